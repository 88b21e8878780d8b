//! Procedurally drawn, captioned pictures of marketplace things.
//!
//! No real photographs or model weights can be downloaded where vitrine is built, so the demo
//! needs its own world: pictograms of things people sell and post as avatars (a dog, a sneaker,
//! a handgun, …) in ten colours, drawn at random sizes, positions, angles and mirror images on
//! plain, gradient, striped, dotted and "floor and wall" backgrounds, as product shots or round
//! avatar badges. Each [`Picture`] is fully determined by its fields (the seed drives every
//! random choice), renders at any size, and comes with English and Chinese captions.
//!
//! The same code makes the demo model's training data (`vitrine bench demo-dataset`, read by
//! `tools/train_demo_model.py`), its held-out evaluation set and the gallery `vitrine demo`
//! indexes, so what the model was trained on and what it is shown are drawn by one renderer.

#![deny(missing_docs)]

mod draw;

use rand::{Rng, SeedableRng};

pub use draw::render;

/// Side of the demo gallery's JPEGs, in pixels.
pub const GALLERY_SIDE: u32 = 160;

/// A kind of thing in the pictures.
#[derive(Debug, Clone, Copy)]
pub struct Object {
    /// Stable key (also the canonical English word).
    pub key: &'static str,
    /// English names; the first is canonical, the others are synonyms used in captions.
    pub en: &'static [&'static str],
    /// Chinese names; the first is canonical.
    pub zh: &'static [&'static str],
}

/// A colour of the things in the pictures.
#[derive(Debug, Clone, Copy)]
pub struct Colour {
    /// English name.
    pub en: &'static str,
    /// Chinese name.
    pub zh: &'static str,
    /// Base sRGB value (each picture jitters it a little).
    pub rgb: [u8; 3],
}

/// The things, in a fixed order (indices are stored in datasets).
pub const OBJECTS: &[Object] = &[
    Object {
        key: "dog",
        en: &["dog", "puppy"],
        zh: &["狗", "小狗"],
    },
    Object {
        key: "cat",
        en: &["cat", "kitten"],
        zh: &["猫", "小猫"],
    },
    Object {
        key: "sneaker",
        en: &["sneaker", "shoe"],
        zh: &["运动鞋", "鞋子"],
    },
    Object {
        key: "t-shirt",
        en: &["t-shirt", "shirt"],
        zh: &["t恤", "短袖"],
    },
    Object {
        key: "phone",
        en: &["phone", "smartphone"],
        zh: &["手机", "智能手机"],
    },
    Object {
        key: "handbag",
        en: &["handbag", "bag"],
        zh: &["手提包", "包"],
    },
    Object {
        key: "watch",
        en: &["watch", "wristwatch"],
        zh: &["手表", "腕表"],
    },
    Object {
        key: "mug",
        en: &["mug", "cup"],
        zh: &["杯子", "马克杯"],
    },
    Object {
        key: "chair",
        en: &["chair"],
        zh: &["椅子"],
    },
    Object {
        key: "lamp",
        en: &["lamp", "desk lamp"],
        zh: &["台灯", "灯"],
    },
    Object {
        key: "bicycle",
        en: &["bicycle", "bike"],
        zh: &["自行车", "单车"],
    },
    Object {
        key: "car",
        en: &["car", "toy car"],
        zh: &["汽车", "车"],
    },
    Object {
        key: "guitar",
        en: &["guitar"],
        zh: &["吉他"],
    },
    Object {
        key: "umbrella",
        en: &["umbrella"],
        zh: &["雨伞", "伞"],
    },
    Object {
        key: "handgun",
        en: &["handgun", "pistol", "gun"],
        zh: &["手枪", "枪"],
    },
    Object {
        key: "knife",
        en: &["knife"],
        zh: &["刀", "小刀"],
    },
];

/// The colours, in a fixed order.
pub const COLOURS: &[Colour] = &[
    Colour {
        en: "red",
        zh: "红色",
        rgb: [205, 35, 40],
    },
    Colour {
        en: "orange",
        zh: "橙色",
        rgb: [240, 130, 25],
    },
    Colour {
        en: "yellow",
        zh: "黄色",
        rgb: [240, 210, 40],
    },
    Colour {
        en: "green",
        zh: "绿色",
        rgb: [45, 155, 60],
    },
    Colour {
        en: "blue",
        zh: "蓝色",
        rgb: [40, 90, 210],
    },
    Colour {
        en: "purple",
        zh: "紫色",
        rgb: [125, 55, 175],
    },
    Colour {
        en: "pink",
        zh: "粉色",
        rgb: [245, 135, 185],
    },
    Colour {
        en: "brown",
        zh: "棕色",
        rgb: [120, 72, 38],
    },
    Colour {
        en: "black",
        zh: "黑色",
        rgb: [24, 24, 27],
    },
    Colour {
        en: "white",
        zh: "白色",
        rgb: [246, 246, 242],
    },
];

/// How the picture is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A product shot: the thing large, with a soft shadow, on a background.
    Product,
    /// A round avatar badge: the thing smaller, on a disc.
    Avatar,
}

impl Style {
    /// The data source this style stands for in the demo.
    pub fn source(self) -> &'static str {
        match self {
            Style::Product => "products",
            Style::Avatar => "avatars",
        }
    }
}

/// One picture: what it shows and the seed of everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    /// Index into [`OBJECTS`].
    pub object: usize,
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Framing.
    pub style: Style,
    /// Seed of the size, position, angle, mirror image and background.
    pub seed: u64,
}

/// A caption and what it claims about its picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    /// The text.
    pub text: String,
    /// `"en"` or `"zh"`.
    pub lang: &'static str,
    /// The object it names.
    pub object: usize,
    /// The colour it names, if it names one ("a samoyed" names white).
    pub colour: Option<usize>,
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl Picture {
    /// A random picture; avatars show more dogs and cats, as real avatars do.
    pub fn sample(rng: &mut impl Rng, style: Style) -> Picture {
        let object = if style == Style::Avatar && rng.random_bool(0.5) {
            rng.random_range(0..2)
        } else {
            rng.random_range(0..OBJECTS.len())
        };
        Picture {
            object,
            colour: rng.random_range(0..COLOURS.len()),
            style,
            seed: rng.random(),
        }
    }

    /// "red dog": the class this picture belongs to.
    pub fn label(&self) -> String {
        format!("{} {}", COLOURS[self.colour].en, OBJECTS[self.object].key)
    }

    /// The canonical English query for pictures like this one: "a photo of a red dog".
    pub fn query_en(object: usize, colour: usize) -> String {
        let c = COLOURS[colour].en;
        format!("a photo of {} {c} {}", article(c), OBJECTS[object].en[0])
    }

    /// The canonical Chinese query: "一张红色狗的照片".
    pub fn query_zh(object: usize, colour: usize) -> String {
        format!("一张{}{}的照片", COLOURS[colour].zh, OBJECTS[object].zh[0])
    }

    /// A random training caption in `lang`: varied templates and synonyms; about one in six
    /// leaves the colour out, and a white dog is sometimes called a samoyed.
    pub fn caption(&self, rng: &mut impl Rng, lang: &'static str) -> Caption {
        let obj = &OBJECTS[self.object];
        let col = &COLOURS[self.colour];
        let samoyed = obj.key == "dog" && col.en == "white" && rng.random_bool(0.3);
        let with_colour = !rng.random_bool(1.0 / 6.0);
        let pick = |rng: &mut dyn rand::RngCore, names: &'static [&'static str]| -> &'static str {
            if rng.random_bool(0.7) {
                names[0]
            } else {
                names[rng.random_range(0..names.len())]
            }
        };
        let text = if lang == "en" {
            let o = if samoyed { "samoyed" } else { pick(rng, obj.en) };
            if with_colour {
                let c = col.en;
                let a = article(c);
                match rng.random_range(0..6) {
                    0 | 1 => format!("a photo of {a} {c} {o}"),
                    2 => format!("{a} {c} {o}"),
                    3 => format!("{c} {o}"),
                    4 => format!("a picture of {a} {c} {o}"),
                    _ => format!("{a} {c} {o} for sale"),
                }
            } else {
                let a = article(o);
                match rng.random_range(0..3) {
                    0 => format!("a photo of {a} {o}"),
                    1 => format!("{a} {o}"),
                    _ => o.to_string(),
                }
            }
        } else {
            let o = if samoyed { "萨摩耶" } else { pick(rng, obj.zh) };
            if with_colour {
                let c = col.zh;
                match rng.random_range(0..6) {
                    0 | 1 => format!("一张{c}{o}的照片"),
                    2 => format!("{c}的{o}"),
                    3 => format!("{c}{o}"),
                    4 => format!("一个{c}的{o}"),
                    _ => format!("出售{c}{o}"),
                }
            } else {
                match rng.random_range(0..3) {
                    0 => format!("一张{o}的照片"),
                    1 => format!("一个{o}"),
                    _ => o.to_string(),
                }
            }
        };
        Caption {
            text,
            lang,
            object: self.object,
            colour: (with_colour || samoyed).then_some(self.colour),
        }
    }
}

impl Picture {
    /// The picture as a JPEG file's bytes (the demo gallery's format), `size` pixels square.
    pub fn jpeg(&self, size: u32, quality: u8) -> Vec<u8> {
        let img = render(self, size);
        let mut out = Vec::with_capacity(size as usize * size as usize / 4);
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        img.write_with_encoder(enc)
            .expect("encoding an in-memory RGB image into a Vec cannot fail");
        out
    }
}

/// `n` pictures from `seed`, `avatar_share` of them avatars; the same arguments give the same
/// pictures on every machine (the generator is seeded ChaCha).
pub fn pictures(n: usize, seed: u64, avatar_share: f64) -> Vec<Picture> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let style = if rng.random_bool(avatar_share) {
                Style::Avatar
            } else {
                Style::Product
            };
            Picture::sample(&mut rng, style)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_pixels_and_different_seeds_differ() {
        let ps = pictures(4, 7, 0.5);
        assert_eq!(ps, pictures(4, 7, 0.5));
        let a = render(&ps[0], 96);
        assert_eq!(a.as_raw(), render(&ps[0], 96).as_raw());
        assert_eq!((a.width(), a.height()), (96, 96));
        assert_ne!(a.as_raw(), render(&ps[1], 96).as_raw());
    }

    #[test]
    fn every_object_and_colour_draws_something_visible() {
        // The centre region must differ from the corner (background) for every thing/colour.
        for object in 0..OBJECTS.len() {
            for colour in 0..COLOURS.len() {
                let p = Picture {
                    object,
                    colour,
                    style: Style::Product,
                    seed: 3,
                };
                let img = render(&p, 64);
                let corner = img.get_pixel(1, 1).0;
                let differing = img
                    .enumerate_pixels()
                    .filter(|(x, y, _)| (16..48).contains(x) && (16..48).contains(y))
                    .filter(|(_, _, px)| px.0.iter().zip(corner).any(|(a, b)| a.abs_diff(b) > 40))
                    .count();
                assert!(differing > 60, "{} drew only {differing} pixels", p.label());
            }
        }
    }

    #[test]
    fn captions_name_what_is_drawn() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let p = Picture {
            object: 14,
            colour: 0,
            style: Style::Product,
            seed: 0,
        };
        for _ in 0..50 {
            let en = p.caption(&mut rng, "en");
            assert!(
                ["handgun", "pistol", "gun"].iter().any(|w| en.text.contains(w)),
                "{}",
                en.text
            );
            if en.colour.is_some() {
                assert!(en.text.contains("red"));
            }
            let zh = p.caption(&mut rng, "zh");
            assert!(zh.text.contains('枪'), "{}", zh.text);
        }
        assert_eq!(Picture::query_en(13, 1), "a photo of an orange umbrella");
        assert_eq!(Picture::query_zh(0, 9), "一张白色狗的照片");
    }
}
