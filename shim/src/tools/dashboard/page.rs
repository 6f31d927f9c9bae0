//! The dashboard's one page, shipped inside the binary: plain HTML, CSS and JavaScript (no
//! build step, no library), fed by the JSON API; the learning curves are SVG drawn by the page.

/// `GET /`.
pub const INDEX: &str = include_str!("page.html");
