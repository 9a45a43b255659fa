//! `examples.html`: example queries of every task with their top results as thumbnails,
//! float and bits side by side, correct results framed green and wrong ones red, because people
//! judge retrieval by looking. Thumbnails are small JPEGs in `thumbs/` next to the page, so the
//! folder can be copied or served as it is.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use rayon::prelude::*;
use unisight_core::atomic::{atomic_write, atomic_write_bytes};
use unisight_data::decode::{load_rgb, DecodeLimits};

use crate::labelled::ItemView;
use crate::report::{Report, ResultView};
use crate::{Error, Result};

/// Longest side of a thumbnail, in pixels.
const THUMB: u32 = 128;

/// Writes `dir/examples.html` and its thumbnails; returns how many images could not be read
/// (they are shown as a grey box with their id).
///
/// # Errors
/// I/O errors on the page or the thumbnail folder.
pub fn write_examples_page(report: &Report, dir: &Path) -> Result<usize> {
    let thumbs = dir.join("thumbs");
    std::fs::create_dir_all(&thumbs).map_err(|e| Error::io(&thumbs, e))?;
    let paths: BTreeSet<&str> = report
        .tasks
        .iter()
        .flat_map(|t| &t.examples)
        .flat_map(|e| {
            std::iter::once(&e.query)
                .chain(e.float.iter().map(|r| &r.item))
                .chain(e.bits.iter().map(|r| &r.item))
        })
        .map(|i| i.path.as_str())
        .collect();
    let failed = paths
        .par_iter()
        .filter(|p| make_thumbnail(Path::new(p), &thumbs.join(thumb_name(p))).is_err())
        .count();

    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>unisight: {}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}\
         .row{{display:flex;gap:6px;align-items:flex-start;margin:4px 0}}\
         figure{{margin:0;width:{THUMB}px;font-size:11px;text-align:center;word-break:break-all}}\
         img,.missing{{width:{THUMB}px;height:{THUMB}px;object-fit:contain;background:#eee;\
         border:4px solid transparent;box-sizing:border-box}}\
         .ok img,.ok .missing{{border-color:#2a2}} .bad img,.bad .missing{{border-color:#d22}}\
         .query img{{border-color:#888}} .mode{{width:4em;font-weight:bold;align-self:center}}\
         .example{{border-bottom:1px solid #ccc;padding:8px 0}}</style></head><body>",
        escape(&report.model_name())
    );
    let _ = write!(
        html,
        "<h1>Example queries: {}</h1><p>Model <code>{}</code>. Each query (grey) is followed \
         by its top results, by cosine on the float embedding and by Hamming distance on the \
         binary code; green = same label as the query, red = not.</p>",
        escape(&report.model_name()),
        escape(&report.model)
    );
    for t in &report.tasks {
        let _ = write!(
            html,
            "<h2>{} <small>({} &rarr; {}, label <code>{}</code>; Recall@1 float {:.3}, bits \
             {:.3})</small></h2>",
            escape(&t.task),
            escape(&t.queries),
            escape(&t.gallery),
            escape(&t.label),
            t.metrics.float.recall.first().copied().unwrap_or(0.0),
            t.metrics.bits.recall.first().copied().unwrap_or(0.0),
        );
        for e in &t.examples {
            html.push_str("<div class=\"example\"><div class=\"row\">");
            figure(&mut html, &e.query, "query", None);
            html.push_str("</div>");
            for (mode, results) in [("float", &e.float), ("bits", &e.bits)] {
                let _ = write!(html, "<div class=\"row\"><div class=\"mode\">{mode}</div>");
                for r in results {
                    result_figure(&mut html, r, mode == "bits");
                }
                html.push_str("</div>");
            }
            html.push_str("</div>");
        }
    }
    html.push_str("</body></html>\n");
    atomic_write_bytes(&dir.join("examples.html"), html.as_bytes())?;
    Ok(failed)
}

fn result_figure(html: &mut String, r: &ResultView, bits: bool) {
    let score = if bits {
        format!("d = {}", r.score)
    } else {
        format!("cos {:.3}", r.score)
    };
    figure(
        html,
        &r.item,
        if r.correct { "ok" } else { "bad" },
        Some(&score),
    );
}

fn figure(html: &mut String, item: &ItemView, class: &str, score: Option<&str>) {
    let _ = write!(
        html,
        "<figure class=\"{class}\" title=\"{}\"><img src=\"thumbs/{}\" alt=\"{}\" \
         onerror=\"this.outerHTML='&lt;div class=missing&gt;&lt;/div&gt;'\">\
         <figcaption>{}{}</figcaption></figure>",
        escape(&item.id),
        thumb_name(&item.path),
        escape(&item.id),
        escape(&item.label),
        score.map(|s| format!("<br>{s}")).unwrap_or_default()
    );
}

/// Thumbnail file name of an image path (stable across runs).
fn thumb_name(path: &str) -> String {
    format!("{:08x}.jpg", crc32c::crc32c(path.as_bytes()))
}

fn make_thumbnail(source: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        return Ok(());
    }
    let image =
        load_rgb(source, &DecodeLimits::default()).map_err(|e| Error::Input(e.to_string()))?;
    let thumb = image::imageops::thumbnail(&image, THUMB, THUMB);
    atomic_write(target, |w| {
        image::codecs::jpeg::JpegEncoder::new_with_quality(w, 85)
            .encode_image(&thumb)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
