//! Writes a contact sheet of random pictures: `cargo run -p vitrine-gallery --example contact_sheet -- out.png [seed]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "contact_sheet.png".into());
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let (cols, rows, cell) = (12u32, 8u32, 96u32);
    let mut sheet = image::RgbImage::new(cols * cell, rows * cell);
    for (i, p) in vitrine_gallery::pictures((cols * rows) as usize, seed, 0.3)
        .iter()
        .enumerate()
    {
        let img = vitrine_gallery::render(p, cell);
        let (x, y) = ((i as u32 % cols) * cell, (i as u32 / cols) * cell);
        image::imageops::replace(&mut sheet, &img, x as i64, y as i64);
    }
    sheet.save(&out).expect("write the sheet");
}
