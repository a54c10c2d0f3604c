//! `--staticdir`: files served by tower-http's `ServeDir` (MIME types, Range and conditional
//! requests, HEAD, index.html for directories), behind our own checks: nothing outside the
//! directory (paths arrive clean; a symlink leading out is refused) and no dotfiles. A
//! directory without index.html gets a listing, its names escaped.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::response::{Body, escape, full};

/// A directory of static files.
#[derive(Debug, Clone)]
pub struct StaticDir {
    root: PathBuf,
    canonical: PathBuf,
    serve: ServeDir,
}

impl StaticDir {
    /// Files under `root`, which must exist.
    pub fn new(root: PathBuf) -> std::io::Result<StaticDir> {
        let canonical = root.canonicalize()?;
        let serve = ServeDir::new(&root).append_index_html_on_directories(true);
        Ok(StaticDir { root, canonical, serve })
    }

    /// The directory, as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serves `path` (decoded and clean) for `req`; `None` when it is not there (or may not be
    /// served), for the caller's 404.
    pub async fn serve<B>(&self, req: Request<B>, path: &str) -> Option<Response<Body>> {
        let relative = path.trim_start_matches('/');
        if relative.split('/').any(|s| s.starts_with('.')) {
            return None;
        }
        let file = self.root.join(relative);
        let real = file.canonicalize().ok()?;
        if !real.starts_with(&self.canonical) {
            return None;
        }
        if real.is_dir() && path.ends_with('/') && !real.join("index.html").is_file() {
            return Some(listing(&real, path));
        }
        let (parts, _) = req.into_parts();
        let resp = self.serve.clone().oneshot(Request::from_parts(parts, ())).await.ok()?;
        if resp.status() == StatusCode::NOT_FOUND {
            return None;
        }
        Some(resp.map(|b| b.map_err(std::io::Error::other).boxed_unsync()))
    }
}

/// An HTML listing of `dir`, dotfiles left out, names escaped.
fn listing(dir: &Path, url_path: &str) -> Response<Body> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.path().is_dir();
            (!name.starts_with('.')).then_some((name, is_dir))
        })
        .collect();
    names.sort();
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title></head><body>\n<h1>{0}</h1>\n<pre>\n",
        escape(url_path)
    );
    for (name, is_dir) in names {
        let shown = if is_dir { format!("{name}/") } else { name };
        let href = percent_encoding::utf8_percent_encode(&shown, crate::path::PATH).to_string();
        html.push_str(&format!("<a href=\"{}\">{}</a>\n", escape(&href), escape(&shown)));
    }
    html.push_str("</pre>\n</body></html>\n");
    let mut resp = Response::new(full(Bytes::from(html)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp
}
