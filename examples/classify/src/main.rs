//! Classifies one image with an optkit deployment bundle.
//!
//! ```text
//! cargo run --release -p optkit-example-classify -- <bundle> <images.idx[.gz]> [index]
//! cargo run --release -p optkit-example-classify -- <bundle> <image.png>
//! ```
//!
//! The bundle is a folder written by `optkit export` or a pipeline's `[deploy]` section; every
//! file is checked against its manifest's SHA-256 before the model is loaded. A PNG must have
//! the manifest's size (8-bit grayscale, or RGB/RGBA averaged to gray).

use std::path::Path;

use anyhow::{Context, Result, bail};
use opt_core::data::idx::{IMAGES_MAGIC, read_idx_file};
use opt_export::Deployed;

fn png_pixels(path: &Path, [c, h, w]: [usize; 3]) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let info = reader.next_frame(&mut buf)?;
    if (info.height as usize, info.width as usize, c) != (h, w, 1) {
        bail!(
            "{} is {}x{}; the model takes {c}-channel {h}x{w} images (resize it first)",
            path.display(),
            info.width,
            info.height
        );
    }
    let step = info.color_type.samples();
    let gray = |px: &[u8]| match step {
        1 | 2 => px[0],
        _ => ((px[0] as u16 + px[1] as u16 + px[2] as u16) / 3) as u8,
    };
    Ok(buf[..info.buffer_size()].chunks(step).map(gray).collect())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bundle, image) = match &args[..] {
        [b, i] | [b, i, _] => (Path::new(b), Path::new(i)),
        _ => bail!("usage: classify <bundle> <images.idx[.gz] [index] | image.png>"),
    };
    let device = Default::default();
    let model = Deployed::<burn_flex::Flex>::load(bundle, &device)?;
    let shape = model.manifest.input.shape;
    let pixels = if image
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        png_pixels(image, shape)?
    } else {
        let index: usize = match args.get(2) {
            Some(s) => s
                .parse()
                .with_context(|| format!("index '{s}' is not a number"))?,
            None => 0,
        };
        let images = read_idx_file(image, IMAGES_MAGIC)?;
        let size: usize = shape.iter().product();
        let [c, h, w] = shape;
        if (c, &images.dims[1..]) != (1, &[h, w][..]) {
            bail!(
                "{} holds {:?} images; the model takes {c}-channel {h}x{w} images",
                image.display(),
                &images.dims[1..]
            );
        }
        let count = images.dims[0];
        if index >= count {
            bail!(
                "index {index} is past the last image ({count} images in {})",
                image.display()
            );
        }
        images.data[index * size..(index + 1) * size].to_vec()
    };
    let p = &model.classify(&pixels, 1)[0];
    println!(
        "{}: class {} ({}), probability {:.3} [{} model '{}']",
        image.display(),
        p.class,
        p.name,
        p.probability,
        model.manifest.kind,
        model.manifest.name
    );
    Ok(())
}
