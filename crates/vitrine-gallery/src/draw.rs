//! The pictograms and backgrounds, drawn with tiny-skia.
//!
//! Each thing is drawn in a 100 × 100 box centred on the origin (y down), then placed by one
//! transform: scale, rotation, mirror image and position.

use crate::{Picture, Style, COLOURS};
use rand::{Rng, SeedableRng};
use tiny_skia::{
    Color, FillRule, GradientStop, LinearGradient, Paint, Path, PathBuilder, Pixmap, Point, Rect, SpreadMode, Stroke,
    Transform,
};

type Rgb = [u8; 3];

/// Draws `picture` as a `size` × `size` RGB image.
pub fn render(picture: &Picture, size: u32) -> image::RgbImage {
    let mut rng = rand::rngs::StdRng::seed_from_u64(picture.seed);
    let size = size.max(8);
    let mut pm = Pixmap::new(size, size).expect("size is at least 8");
    let s = size as f32;
    let base = COLOURS[picture.colour].rgb;
    let spread = if base.iter().all(|&c| !(30..=230).contains(&c)) {
        8
    } else {
        18
    };
    let main: Rgb = base.map(|c| (c as i32 + rng.random_range(-spread..=spread)).clamp(0, 255) as u8);
    let bg = background(&mut pm, &mut rng, main);
    let (lo, hi) = match picture.style {
        Style::Product => (0.62, 0.92),
        Style::Avatar => (0.6, 0.8),
    };
    if picture.style == Style::Avatar {
        let disc = contrasting(&mut rng, main, Some(bg));
        fill(
            &mut pm,
            circle(s / 2.0, s / 2.0, s * 0.44),
            paint(disc),
            Transform::identity(),
        );
    }
    let frac = rng.random_range(lo..hi);
    let room = (1.0 - frac) * s * 0.4;
    let (cx, cy) = (
        s / 2.0 + rng.random_range(-room..=room),
        s / 2.0 + rng.random_range(-room..=room),
    );
    let scale = frac * s / 100.0;
    let mirror = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
    let angle = rng.random_range(-15.0..15.0f32)
        + if OBJECT_TILT.contains(&picture.object) {
            35.0
        } else {
            0.0
        };
    if picture.style == Style::Product {
        // A soft contact shadow under the thing.
        let mut p = paint([0, 0, 0]);
        p.set_color(Color::from_rgba8(0, 0, 0, 50));
        fill(
            &mut pm,
            oval(cx, cy + 40.0 * scale, 38.0 * scale, 7.0 * scale),
            p,
            Transform::identity(),
        );
    }
    let t = Transform::from_translate(cx, cy)
        .pre_rotate(angle)
        .pre_scale(scale * mirror, scale);
    let mut pen = Pen::new(&mut pm, t, main);
    DRAW[picture.object](&mut pen);
    let rgba = pm.take();
    let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    image::RgbImage::from_raw(size, size, rgb).expect("buffer has size² pixels")
}

/// Things drawn upright look better tilted (a guitar leaning).
const OBJECT_TILT: &[usize] = &[12];

fn lum(c: Rgb) -> f32 {
    (0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32) / 255.0
}

/// A background colour that stands out from the thing: mostly tinted greys, sometimes a
/// pastel of another palette colour, always at least 0.3 apart in luminance.
fn contrasting(rng: &mut impl Rng, thing: Rgb, avoid: Option<Rgb>) -> Rgb {
    for _ in 0..32 {
        let c: Rgb = if rng.random_bool(0.2) {
            let other = COLOURS[rng.random_range(0..COLOURS.len())].rgb;
            let grey = rng.random_range(0.3..0.95f32) * 255.0;
            other.map(|v| (0.5 * v as f32 + 0.5 * grey) as u8)
        } else {
            let g = rng.random_range(0.1..0.96f32) * 255.0;
            [0; 3].map(|_: u8| (g + rng.random_range(-18.0..18.0f32)).clamp(0.0, 255.0) as u8)
        };
        let far_from_thing = (lum(c) - lum(thing)).abs() >= 0.3;
        let far_from_avoid = avoid.is_none_or(|a| (lum(c) - lum(a)).abs() >= 0.08);
        if far_from_thing && far_from_avoid {
            return c;
        }
    }
    if lum(thing) > 0.5 {
        [40, 42, 48]
    } else {
        [228, 226, 220]
    }
}

fn shade(c: Rgb, k: f32) -> Rgb {
    c.map(|v| (v as f32 * k).clamp(0.0, 255.0) as u8)
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [0, 1, 2].map(|i| (a[i] as f32 * (1.0 - t) + b[i] as f32 * t) as u8)
}

fn background(pm: &mut Pixmap, rng: &mut impl Rng, thing: Rgb) -> Rgb {
    let a = contrasting(rng, thing, None);
    let s = pm.width() as f32;
    let near = |rng: &mut dyn rand::RngCore| -> Rgb {
        let k = rng.random_range(0.82..1.12f32);
        shade(a, k)
    };
    pm.fill(Color::from_rgba8(a[0], a[1], a[2], 255));
    match rng.random_range(0..5) {
        0 => {}
        1 => {
            let b = near(rng);
            let g = LinearGradient::new(
                Point::from_xy(0.0, 0.0),
                Point::from_xy(rng.random_range(0.0..s), s),
                vec![GradientStop::new(0.0, color(a)), GradientStop::new(1.0, color(b))],
                SpreadMode::Pad,
                Transform::identity(),
            );
            if let Some(shader) = g {
                let p = Paint {
                    shader,
                    anti_alias: true,
                    ..Paint::default()
                };
                fill(pm, rect(0.0, 0.0, s, s), p, Transform::identity());
            }
        }
        2 => {
            // Floor and wall: a product photographed on a table.
            let b = near(rng);
            let h = rng.random_range(0.55..0.78) * s;
            fill(pm, rect(0.0, h, s, s - h), paint(b), Transform::identity());
        }
        3 => {
            let b = near(rng);
            let w = rng.random_range(0.04..0.12) * s;
            let angle = rng.random_range(0.0..180.0f32);
            let mut pb = PathBuilder::new();
            let mut x = -s;
            while x < 2.0 * s {
                if let Some(r) = Rect::from_xywh(x, -s, w, 3.0 * s) {
                    pb.push_rect(r);
                }
                x += 2.0 * w;
            }
            if let Some(path) = pb.finish() {
                fill(
                    pm,
                    Some(path),
                    paint(b),
                    Transform::from_rotate_at(angle, s / 2.0, s / 2.0),
                );
            }
        }
        _ => {
            let b = near(rng);
            let r = rng.random_range(0.01..0.03) * s;
            let step = rng.random_range(0.08..0.16) * s;
            let mut pb = PathBuilder::new();
            let mut y = step / 2.0;
            let mut row = 0;
            while y < s {
                let mut x = if row % 2 == 0 { step / 2.0 } else { step };
                while x < s {
                    pb.push_circle(x, y, r);
                    x += step;
                }
                y += step;
                row += 1;
            }
            if let Some(path) = pb.finish() {
                fill(pm, Some(path), paint(b), Transform::identity());
            }
        }
    }
    a
}

fn color(c: Rgb) -> Color {
    Color::from_rgba8(c[0], c[1], c[2], 255)
}

fn paint(c: Rgb) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(color(c));
    p.anti_alias = true;
    p
}

fn fill(pm: &mut Pixmap, path: Option<Path>, p: Paint, t: Transform) {
    if let Some(path) = path {
        pm.fill_path(&path, &p, FillRule::Winding, t, None);
    }
}

fn circle(x: f32, y: f32, r: f32) -> Option<Path> {
    PathBuilder::from_circle(x, y, r)
}

fn oval(cx: f32, cy: f32, rx: f32, ry: f32) -> Option<Path> {
    PathBuilder::from_oval(Rect::from_xywh(cx - rx, cy - ry, 2.0 * rx, 2.0 * ry)?)
}

fn rect(x: f32, y: f32, w: f32, h: f32) -> Option<Path> {
    Some(PathBuilder::from_rect(Rect::from_xywh(x, y, w, h)?))
}

fn rrect(x: f32, y: f32, w: f32, h: f32, r: f32) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.quad_to(x + w, y, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.quad_to(x + w, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.quad_to(x, y + h, x, y + h - r);
    pb.line_to(x, y + r);
    pb.quad_to(x, y, x + r, y);
    pb.close();
    pb.finish()
}

fn poly(points: &[(f32, f32)]) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.move_to(points[0].0, points[0].1);
    for &(x, y) in &points[1..] {
        pb.line_to(x, y);
    }
    pb.close();
    pb.finish()
}

fn line(points: &[(f32, f32)]) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.move_to(points[0].0, points[0].1);
    for &(x, y) in &points[1..] {
        pb.line_to(x, y);
    }
    pb.finish()
}

/// Which ink a part is drawn in.
#[derive(Clone, Copy)]
enum Ink {
    /// The thing's colour (what captions name).
    Main,
    /// A darker (for black, lighter) shade of it: details and outlines.
    Detail,
    /// A fixed colour that is not the thing's (a watch face, a phone screen, tyres).
    Fixed(Rgb),
}

struct Pen<'a> {
    pm: &'a mut Pixmap,
    t: Transform,
    main: Rgb,
    detail: Rgb,
}

impl<'a> Pen<'a> {
    fn new(pm: &'a mut Pixmap, t: Transform, main: Rgb) -> Pen<'a> {
        let detail = if lum(main) < 0.25 {
            mix(main, [255; 3], 0.45)
        } else {
            shade(main, 0.55)
        };
        Pen { pm, t, main, detail }
    }

    fn rgb(&self, ink: Ink) -> Rgb {
        match ink {
            Ink::Main => self.main,
            Ink::Detail => self.detail,
            Ink::Fixed(c) => c,
        }
    }

    /// Fills in the thing's colour with a detail-coloured outline.
    fn body(&mut self, path: Option<Path>) {
        if let Some(path) = path {
            self.pm
                .fill_path(&path, &paint(self.main), FillRule::Winding, self.t, None);
            let stroke = Stroke {
                width: 2.0,
                ..Stroke::default()
            };
            self.pm.stroke_path(&path, &paint(self.detail), &stroke, self.t, None);
        }
    }

    fn fill(&mut self, path: Option<Path>, ink: Ink) {
        let c = self.rgb(ink);
        fill(self.pm, path, paint(c), self.t);
    }

    fn stroke(&mut self, path: Option<Path>, ink: Ink, width: f32) {
        if let Some(path) = path {
            let stroke = Stroke {
                width,
                line_cap: tiny_skia::LineCap::Round,
                line_join: tiny_skia::LineJoin::Round,
                ..Stroke::default()
            };
            let c = self.rgb(ink);
            self.pm.stroke_path(&path, &paint(c), &stroke, self.t, None);
        }
    }
}

const DARK: Rgb = [38, 38, 42];
const SCREEN: Rgb = [70, 86, 110];
const FACE: Rgb = [236, 236, 230];
const STEEL: Rgb = [170, 174, 182];

type DrawFn = fn(&mut Pen);

/// One function per entry of [`crate::OBJECTS`], in the same order.
const DRAW: [DrawFn; 16] = [
    dog, cat, sneaker, tshirt, phone, handbag, watch, mug, chair, lamp, bicycle, car, guitar, umbrella, handgun, knife,
];

fn dog(p: &mut Pen) {
    p.stroke(line(&[(-30.0, -2.0), (-40.0, -16.0), (-44.0, -22.0)]), Ink::Main, 6.0);
    for x in [-26.0, -15.0, 4.0, 14.0] {
        p.body(rrect(x, 8.0, 7.0, 32.0, 3.0));
    }
    p.body(oval(-5.0, 6.0, 28.0, 14.0));
    p.body(circle(25.0, -12.0, 14.0));
    p.body(oval(38.0, -7.0, 10.0, 7.0));
    p.fill(oval(19.0, -12.0, 5.0, 10.0), Ink::Detail);
    p.fill(circle(28.0, -16.0, 2.2), Ink::Fixed(DARK));
    p.fill(circle(47.0, -9.0, 2.8), Ink::Fixed(DARK));
}

fn cat(p: &mut Pen) {
    let mut pb = PathBuilder::new();
    pb.move_to(16.0, 40.0);
    pb.quad_to(44.0, 36.0, 38.0, 8.0);
    p.stroke(pb.finish(), Ink::Main, 6.0);
    p.body(oval(0.0, 18.0, 22.0, 26.0));
    p.body(poly(&[(-17.0, -26.0), (-14.0, -48.0), (-2.0, -36.0)]));
    p.body(poly(&[(17.0, -26.0), (14.0, -48.0), (2.0, -36.0)]));
    p.body(circle(0.0, -24.0, 17.0));
    p.fill(oval(-6.5, -26.0, 2.2, 3.5), Ink::Fixed(DARK));
    p.fill(oval(6.5, -26.0, 2.2, 3.5), Ink::Fixed(DARK));
    p.fill(poly(&[(-2.5, -19.0), (2.5, -19.0), (0.0, -16.0)]), Ink::Detail);
    for (y0, y1) in [(-18.0, -20.0), (-16.0, -15.0)] {
        p.stroke(line(&[(-4.0, y0 + 1.0), (-20.0, y1)]), Ink::Detail, 1.0);
        p.stroke(line(&[(4.0, y0 + 1.0), (20.0, y1)]), Ink::Detail, 1.0);
    }
}

fn sneaker(p: &mut Pen) {
    p.body(poly(&[
        (-44.0, 12.0),
        (-44.0, -8.0),
        (-22.0, -12.0),
        (-6.0, -26.0),
        (10.0, -26.0),
        (16.0, -10.0),
        (42.0, -2.0),
        (46.0, 12.0),
    ]));
    p.fill(rrect(-46.0, 10.0, 94.0, 9.0, 4.0), Ink::Fixed(FACE));
    p.stroke(line(&[(-46.0, 19.0), (48.0, 19.0)]), Ink::Detail, 2.0);
    for i in 0..3 {
        let x = -4.0 + 6.0 * i as f32;
        p.stroke(
            line(&[(x, -22.0 + 4.0 * i as f32), (x + 7.0, -19.0 + 4.0 * i as f32)]),
            Ink::Detail,
            2.0,
        );
    }
}

fn tshirt(p: &mut Pen) {
    let mut pb = PathBuilder::new();
    pb.move_to(-14.0, -40.0);
    pb.line_to(-40.0, -30.0);
    pb.line_to(-50.0, -8.0);
    pb.line_to(-34.0, 0.0);
    pb.line_to(-30.0, -8.0);
    pb.line_to(-30.0, 42.0);
    pb.line_to(30.0, 42.0);
    pb.line_to(30.0, -8.0);
    pb.line_to(34.0, 0.0);
    pb.line_to(50.0, -8.0);
    pb.line_to(40.0, -30.0);
    pb.line_to(14.0, -40.0);
    pb.quad_to(0.0, -26.0, -14.0, -40.0);
    pb.close();
    p.body(pb.finish());
    p.stroke(line(&[(-30.0, -8.0), (-36.0, -4.0)]), Ink::Detail, 1.5);
}

fn phone(p: &mut Pen) {
    p.body(rrect(-21.0, -44.0, 42.0, 88.0, 7.0));
    p.fill(rrect(-16.0, -35.0, 32.0, 66.0, 2.0), Ink::Fixed(SCREEN));
    p.fill(circle(0.0, 37.0, 3.5), Ink::Detail);
    p.stroke(line(&[(-5.0, -39.5), (5.0, -39.5)]), Ink::Detail, 2.0);
}

fn handbag(p: &mut Pen) {
    let mut pb = PathBuilder::new();
    pb.move_to(-22.0, -4.0);
    pb.cubic_to(-22.0, -38.0, 22.0, -38.0, 22.0, -4.0);
    p.stroke(pb.finish(), Ink::Detail, 6.0);
    p.body(poly(&[(-36.0, -6.0), (36.0, -6.0), (44.0, 38.0), (-44.0, 38.0)]));
    p.stroke(line(&[(-38.0, 6.0), (38.0, 6.0)]), Ink::Detail, 2.0);
    p.fill(rrect(-6.0, 2.0, 12.0, 9.0, 2.0), Ink::Fixed(STEEL));
}

fn watch(p: &mut Pen) {
    p.body(rrect(-13.0, -50.0, 26.0, 34.0, 4.0));
    p.body(rrect(-13.0, 16.0, 26.0, 34.0, 4.0));
    p.body(circle(0.0, 0.0, 23.0));
    p.fill(circle(0.0, 0.0, 16.0), Ink::Fixed(FACE));
    p.stroke(line(&[(0.0, 0.0), (0.0, -12.0)]), Ink::Fixed(DARK), 2.5);
    p.stroke(line(&[(0.0, 0.0), (9.0, 3.0)]), Ink::Fixed(DARK), 2.5);
    p.fill(rrect(22.0, -4.0, 6.0, 8.0, 1.5), Ink::Detail);
}

fn mug(p: &mut Pen) {
    p.stroke(circle(22.0, 0.0, 14.0), Ink::Main, 8.0);
    p.stroke(circle(22.0, 0.0, 14.0), Ink::Detail, 1.5);
    p.body(rrect(-30.0, -32.0, 50.0, 66.0, 6.0));
    p.fill(oval(-5.0, -32.0, 25.0, 4.0), Ink::Detail);
}

fn chair(p: &mut Pen) {
    p.body(rrect(-26.0, -48.0, 11.0, 56.0, 3.0));
    p.body(rrect(-26.0, 8.0, 7.0, 40.0, 2.0));
    p.body(rrect(20.0, 8.0, 7.0, 40.0, 2.0));
    p.body(rrect(-28.0, 0.0, 58.0, 10.0, 3.0));
    p.stroke(line(&[(-22.0, 30.0), (23.0, 30.0)]), Ink::Detail, 3.0);
}

fn lamp(p: &mut Pen) {
    p.fill(rect(-3.0, -18.0, 6.0, 50.0), Ink::Detail);
    p.body(poly(&[(-30.0, -14.0), (30.0, -14.0), (16.0, -46.0), (-16.0, -46.0)]));
    p.fill(oval(0.0, -12.0, 7.0, 4.0), Ink::Fixed([250, 240, 170]));
    p.body(rrect(-24.0, 30.0, 48.0, 12.0, 5.0));
}

fn bicycle(p: &mut Pen) {
    for x in [-27.0, 27.0] {
        p.stroke(circle(x, 16.0, 18.0), Ink::Fixed(DARK), 4.5);
        p.fill(circle(x, 16.0, 3.0), Ink::Detail);
    }
    let frame = [
        line(&[(-27.0, 16.0), (-5.0, -10.0), (19.0, -10.0), (27.0, 16.0)]),
        line(&[(-27.0, 16.0), (0.0, 16.0), (19.0, -10.0)]),
        line(&[(0.0, 16.0), (-7.0, -14.0)]),
        line(&[(19.0, -10.0), (21.0, -22.0), (29.0, -24.0)]),
    ];
    for l in frame {
        p.stroke(l, Ink::Main, 6.0);
    }
    p.stroke(line(&[(-14.0, -16.0), (-1.0, -16.0)]), Ink::Detail, 5.0);
}

fn car(p: &mut Pen) {
    p.body(poly(&[(-28.0, -4.0), (-16.0, -26.0), (16.0, -26.0), (30.0, -4.0)]));
    p.fill(
        poly(&[(-21.0, -6.0), (-13.0, -21.0), (-2.0, -21.0), (-2.0, -6.0)]),
        Ink::Fixed(SCREEN),
    );
    p.fill(
        poly(&[(2.0, -6.0), (2.0, -21.0), (13.0, -21.0), (22.0, -6.0)]),
        Ink::Fixed(SCREEN),
    );
    p.body(rrect(-48.0, -6.0, 96.0, 26.0, 7.0));
    for x in [-27.0, 27.0] {
        p.fill(circle(x, 20.0, 11.0), Ink::Fixed(DARK));
        p.fill(circle(x, 20.0, 4.5), Ink::Fixed(STEEL));
    }
    p.fill(rrect(40.0, 0.0, 7.0, 5.0, 1.5), Ink::Fixed([250, 236, 160]));
}

fn guitar(p: &mut Pen) {
    p.fill(rect(-3.5, -50.0, 7.0, 42.0), Ink::Detail);
    p.fill(rrect(-6.0, -58.0, 12.0, 12.0, 2.0), Ink::Detail);
    p.body(circle(0.0, 24.0, 21.0));
    p.body(circle(0.0, -2.0, 15.0));
    p.fill(circle(0.0, 0.0, 14.0), Ink::Main);
    p.fill(circle(0.0, 10.0, 6.0), Ink::Fixed(DARK));
    p.fill(rect(-8.0, 30.0, 16.0, 4.0), Ink::Detail);
}

fn umbrella(p: &mut Pen) {
    p.stroke(line(&[(0.0, -40.0), (0.0, 36.0)]), Ink::Fixed(DARK), 3.5);
    let mut pb = PathBuilder::new();
    pb.move_to(0.0, 36.0);
    pb.quad_to(0.0, 46.0, -8.0, 44.0);
    p.stroke(pb.finish(), Ink::Fixed(DARK), 3.5);
    let mut pb = PathBuilder::new();
    pb.move_to(-48.0, 0.0);
    pb.cubic_to(-46.0, -52.0, 46.0, -52.0, 48.0, 0.0);
    for i in 0..4 {
        let x1 = 48.0 - 24.0 * i as f32;
        pb.quad_to(x1 - 12.0, -9.0, x1 - 24.0, 0.0);
    }
    pb.close();
    p.body(pb.finish());
    p.fill(circle(0.0, -40.0, 3.0), Ink::Detail);
}

fn handgun(p: &mut Pen) {
    let mut pb = PathBuilder::new();
    pb.move_to(2.0, -6.0);
    pb.quad_to(-4.0, 16.0, 16.0, 10.0);
    p.stroke(pb.finish(), Ink::Detail, 3.5);
    p.body(poly(&[(8.0, -8.0), (32.0, -8.0), (40.0, 34.0), (20.0, 38.0)]));
    p.body(rrect(-46.0, -26.0, 84.0, 19.0, 3.0));
    p.fill(rect(-48.0, -22.0, 4.0, 9.0), Ink::Fixed(DARK));
    for i in 0..4 {
        let x = 22.0 + 4.0 * i as f32;
        p.stroke(line(&[(x, -23.0), (x, -11.0)]), Ink::Detail, 1.5);
    }
    p.fill(rect(6.0, -7.0, 3.0, 8.0), Ink::Fixed(DARK));
}

fn knife(p: &mut Pen) {
    let mut pb = PathBuilder::new();
    pb.move_to(-48.0, -2.0);
    pb.quad_to(-20.0, -12.0, 14.0, -12.0);
    pb.line_to(14.0, 8.0);
    pb.quad_to(-20.0, 8.0, -48.0, -2.0);
    pb.close();
    p.body(pb.finish());
    p.stroke(line(&[(-30.0, -3.0), (10.0, -3.0)]), Ink::Detail, 1.0);
    p.fill(rect(14.0, -14.0, 4.0, 24.0), Ink::Fixed(STEEL));
    p.fill(rrect(18.0, -8.0, 32.0, 13.0, 5.0), Ink::Detail);
    for x in [26.0, 38.0] {
        p.fill(circle(x, -1.5, 1.8), Ink::Fixed(STEEL));
    }
}
