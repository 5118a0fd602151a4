//! Finding the Depth Pro weights file, and downloading it when asked to.
//!
//! [`WeightsLocator::locate`] looks, in this order, at:
//! 1. [`WeightsLocator::explicit`] (the CLI's `--weights`): used as given, it must exist;
//! 2. the environment variable [`WEIGHTS_ENV`] (`DEPTH2PLY_WEIGHTS`): same rule;
//! 3. the cache file `<cache>/depth_pro.pt`, where `<cache>` is [`WeightsLocator::cache_dir`] or else
//!    `$XDG_CACHE_HOME/depth2ply`, `$HOME/.cache/depth2ply` (`%LOCALAPPDATA%\depth2ply` on Windows);
//! 4. with the cargo feature `hub` and [`WeightsLocator::allow_download`]: a download of
//!    `depth_pro.pt` from the Hugging Face hub repository `apple/DepthPro` into that cache file.
//!
//! The download (feature `hub`) is a plain HTTPS GET of
//! `{endpoint}/{repo}/resolve/{revision}/{filename}` written to `<cache>/depth_pro.pt.part`; an
//! interrupted download is resumed with an HTTP `Range` request the next time, and the finished file
//! is renamed into place only after its size and first bytes have been checked. The endpoint is
//! [`WeightsLocator::endpoint`], else `DEPTH2PLY_HF_ENDPOINT`, else `HF_ENDPOINT`, else
//! `https://huggingface.co`.
//!
//! Why not the `hf-hub` crate: its 0.5 sync API can resume and change the endpoint, but it accepts a
//! body that ends early as a complete file (no size check after the copy), has `expect`/`assert!`
//! panics reachable from malformed server replies, needs hub-only headers (`x-repo-commit`, `etag`),
//! so it cannot fetch from a plain mirror, and stores files in the HF cache layout (blobs + symlinks)
//! instead of the single documented cache file. A direct `ureq` GET is about 150 lines and avoids all
//! four.
//!
//! Licence: see [`crate::error::WEIGHTS_LICENCE_NOTE`]; nothing is downloaded unless asked to.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::ModelError;

/// Environment variable holding a path to the weights file.
pub const WEIGHTS_ENV: &str = "DEPTH2PLY_WEIGHTS";

/// Environment variable overriding the Hugging Face endpoint (checked before [`HF_ENDPOINT_ENV`]).
pub const ENDPOINT_ENV: &str = "DEPTH2PLY_HF_ENDPOINT";

/// The Hugging Face tools' own endpoint variable, honoured as a fallback.
pub const HF_ENDPOINT_ENV: &str = "HF_ENDPOINT";

/// Hugging Face access token variable; sent as a bearer token to the endpoint when set (only needed
/// for gated or private repositories and mirrors).
pub const HF_TOKEN_ENV: &str = "HF_TOKEN";

/// Default Hugging Face endpoint.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// Hub repository holding Apple's checkpoint.
pub const DEFAULT_HUB_REPO: &str = "apple/DepthPro";

/// File name of the checkpoint, in the hub repository and in the cache.
pub const WEIGHTS_FILE_NAME: &str = "depth_pro.pt";

/// Name of the cache sub-directory.
pub const CACHE_DIR_NAME: &str = "depth2ply";

/// How to find the weights. Building one does no I/O; [`WeightsLocator::locate`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsLocator {
    /// A path given by the user (`--weights`). Used as is; an error if it does not exist.
    pub explicit: Option<PathBuf>,
    /// Whether to read [`WEIGHTS_ENV`]. Default `true`.
    pub use_env: bool,
    /// Cache directory; `None` = `$XDG_CACHE_HOME/depth2ply`, else `$HOME/.cache/depth2ply`.
    pub cache_dir: Option<PathBuf>,
    /// Whether to download into the cache when nothing is found (needs the `hub` feature). Default
    /// `true`.
    pub allow_download: bool,
    /// Hugging Face endpoint, e.g. `https://huggingface.co` or a mirror; `None` = [`ENDPOINT_ENV`],
    /// [`HF_ENDPOINT_ENV`], then [`DEFAULT_HF_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Hub repository. Default [`DEFAULT_HUB_REPO`].
    pub repo: String,
    /// Branch, tag or commit in the repository. Default `main`.
    pub revision: String,
    /// File to fetch from the repository. Default [`WEIGHTS_FILE_NAME`].
    pub filename: String,
}

impl Default for WeightsLocator {
    fn default() -> Self {
        Self {
            explicit: None,
            use_env: true,
            cache_dir: None,
            allow_download: true,
            endpoint: None,
            repo: DEFAULT_HUB_REPO.to_string(),
            revision: "main".to_string(),
            filename: WEIGHTS_FILE_NAME.to_string(),
        }
    }
}

/// How the weights file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsOrigin {
    /// From [`WeightsLocator::explicit`].
    Explicit,
    /// From the [`WEIGHTS_ENV`] environment variable.
    Environment,
    /// Already in the cache directory.
    Cache,
    /// Downloaded now (or a partial download completed) from this URL.
    Downloaded {
        /// The URL requested.
        url: String,
    },
}

/// A weights file and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedWeights {
    /// The file.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: WeightsOrigin,
}

/// Download progress, reported after each chunk written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes of the file present on disk so far (including a resumed part).
    pub downloaded_bytes: u64,
    /// Size of the whole file, when the server said.
    pub total_bytes: Option<u64>,
    /// Bytes that were already on disk when this download started (0 unless resuming).
    pub resumed_from_bytes: u64,
}

impl WeightsLocator {
    /// Finds the weights using the process environment; downloads without reporting progress.
    pub fn locate(&self) -> Result<LocatedWeights, ModelError> {
        self.locate_with_env(&|name| std::env::var_os(name), &mut |_| {})
    }

    /// Like [`WeightsLocator::locate`], calling `progress` while downloading.
    pub fn locate_with_progress(
        &self,
        progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<LocatedWeights, ModelError> {
        self.locate_with_env(&|name| std::env::var_os(name), progress)
    }

    /// Like [`WeightsLocator::locate_with_progress`] with the environment read through `env` (tests,
    /// or callers that sandbox the environment).
    pub fn locate_with_env(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
        progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<LocatedWeights, ModelError> {
        if let Some(path) = &self.explicit {
            return existing(path, "--weights", WeightsOrigin::Explicit);
        }
        let mut searched = vec!["no --weights given".to_string()];
        if self.use_env {
            match env(WEIGHTS_ENV).filter(|v| !v.is_empty()) {
                Some(value) => return existing(Path::new(&value), WEIGHTS_ENV, WeightsOrigin::Environment),
                None => searched.push(format!("{WEIGHTS_ENV} is not set")),
            }
        }
        let Some(cache_file) = self.cache_file(env) else {
            searched.push("no cache directory ($XDG_CACHE_HOME and $HOME are unset)".to_string());
            return Err(ModelError::WeightsNotFound {
                searched: searched.join(", "),
                download: "nothing was downloaded: there is no cache directory to download into".to_string(),
                cache_path: PathBuf::from(format!("$HOME/.cache/{CACHE_DIR_NAME}/{WEIGHTS_FILE_NAME}")),
            });
        };
        if cache_file.is_file() {
            return Ok(LocatedWeights {
                path: cache_file,
                origin: WeightsOrigin::Cache,
            });
        }
        searched.push(format!("no {}", cache_file.display()));
        let searched = searched.join(", ");
        if !self.allow_download {
            return Err(ModelError::WeightsNotFound {
                searched,
                download: "downloading is disabled".to_string(),
                cache_path: cache_file,
            });
        }
        self.download(env, cache_file, searched, progress)
    }

    /// The cache file `<cache dir>/depth_pro.pt` (no I/O), or `None` when no cache directory can be
    /// derived from the environment.
    pub fn cache_file(&self, env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
        let dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir(env)?,
        };
        Some(dir.join(WEIGHTS_FILE_NAME))
    }

    /// The endpoint in effect (field, then [`ENDPOINT_ENV`], [`HF_ENDPOINT_ENV`], default), without a
    /// trailing slash.
    pub fn effective_endpoint(&self, env: &dyn Fn(&str) -> Option<OsString>) -> String {
        let from_env = |name| {
            env(name)
                .and_then(|v| v.into_string().ok())
                .filter(|v| !v.is_empty())
        };
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| from_env(ENDPOINT_ENV))
            .or_else(|| from_env(HF_ENDPOINT_ENV))
            .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_string());
        endpoint.trim_end_matches('/').to_string()
    }

    /// The URL the download fetches: `{endpoint}/{repo}/resolve/{revision}/{filename}`.
    pub fn download_url(&self, env: &dyn Fn(&str) -> Option<OsString>) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.effective_endpoint(env),
            self.repo,
            self.revision,
            self.filename
        )
    }

    #[cfg(feature = "hub")]
    fn download(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
        cache_file: PathBuf,
        _searched: String,
        progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<LocatedWeights, ModelError> {
        let url = self.download_url(env);
        let token = env(HF_TOKEN_ENV)
            .and_then(|v| v.into_string().ok())
            .filter(|t| !t.is_empty());
        hub::download(&url, token.as_deref(), &cache_file, progress)?;
        Ok(LocatedWeights {
            path: cache_file,
            origin: WeightsOrigin::Downloaded { url },
        })
    }

    #[cfg(not(feature = "hub"))]
    fn download(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
        cache_file: PathBuf,
        searched: String,
        _progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<LocatedWeights, ModelError> {
        Err(ModelError::WeightsNotFound {
            searched,
            download: format!(
                "this build cannot download (it was compiled without the `hub` feature; it would have \
                 fetched {})",
                self.download_url(env)
            ),
            cache_path: cache_file,
        })
    }
}

fn existing(path: &Path, origin_name: &str, origin: WeightsOrigin) -> Result<LocatedWeights, ModelError> {
    if path.is_file() {
        Ok(LocatedWeights {
            path: path.to_path_buf(),
            origin,
        })
    } else {
        Err(ModelError::WeightsPathMissing {
            origin: origin_name.to_string(),
            path: path.to_path_buf(),
        })
    }
}

/// `$XDG_CACHE_HOME/depth2ply` (absolute values only, per the XDG spec), else
/// `$HOME/.cache/depth2ply`, else `%LOCALAPPDATA%\depth2ply`.
fn default_cache_dir(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let non_empty = |name| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(xdg) = non_empty("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join(CACHE_DIR_NAME));
    }
    if let Some(home) = non_empty("HOME") {
        return Some(home.join(".cache").join(CACHE_DIR_NAME));
    }
    non_empty("LOCALAPPDATA").map(|p| p.join(CACHE_DIR_NAME))
}

#[cfg(feature = "hub")]
mod hub {
    //! Resumable download with `ureq`.

    use std::fs::{self, File, OpenOptions};
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::DownloadProgress;
    use crate::error::ModelError;

    /// Report progress at most every this many bytes.
    const PROGRESS_STEP: u64 = 1 << 20;

    pub(super) fn download(
        url: &str,
        token: Option<&str>,
        dest: &Path,
        progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<(), ModelError> {
        let part = part_path(dest);
        let fail = |reason: String| ModelError::Download {
            url: url.to_string(),
            reason,
            path: part.clone(),
        };
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| ModelError::io("create the cache directory", dir, e))?;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("depth2ply/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        // At most two rounds: the second restarts from zero when the part file cannot be resumed.
        for _ in 0..2 {
            let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            let mut request = agent.get(url);
            if have > 0 {
                request = request.header("Range", format!("bytes={have}-"));
            }
            if let Some(token) = token {
                // ureq (default policy) never forwards it on redirects: the storage CDN does not see it.
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let mut response = request.call().map_err(|e| fail(e.to_string()))?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let content_range = header("content-range").and_then(|v| parse_content_range(&v));
            let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
            let (start, total) = match status {
                206 => match content_range {
                    Some((Some(start), total)) if start == have => (start, total),
                    _ => {
                        remove_part(&part)?;
                        continue;
                    }
                },
                200 => (0, content_length),
                416 => {
                    // Nothing left to send: either the part is already complete or it is bogus.
                    if matches!(content_range, Some((None, Some(total))) if total == have) {
                        return finish(&part, dest, have, Some(have)).map_err(fail);
                    }
                    remove_part(&part)?;
                    continue;
                }
                _ => return Err(fail(format!("the server answered HTTP {status}"))),
            };
            let mut file = if start == 0 {
                File::create(&part)
            } else {
                OpenOptions::new().append(true).open(&part)
            }
            .map_err(|e| ModelError::io("write the partial download", &part, e))?;
            let mut reader = response.body_mut().as_reader();
            let mut done = start;
            let mut reported = start;
            let mut buf = vec![0u8; 256 * 1024];
            progress(DownloadProgress {
                downloaded_bytes: done,
                total_bytes: total,
                resumed_from_bytes: start,
            });
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = file.sync_all();
                        return Err(fail(format!(
                            "the connection broke after {done} bytes ({e}); run again to resume"
                        )));
                    }
                };
                file.write_all(&buf[..n])
                    .map_err(|e| ModelError::io("write the partial download", &part, e))?;
                done += n as u64;
                if done - reported >= PROGRESS_STEP {
                    reported = done;
                    progress(DownloadProgress {
                        downloaded_bytes: done,
                        total_bytes: total,
                        resumed_from_bytes: start,
                    });
                }
            }
            file.sync_all()
                .map_err(|e| ModelError::io("write the partial download", &part, e))?;
            drop(file);
            progress(DownloadProgress {
                downloaded_bytes: done,
                total_bytes: total,
                resumed_from_bytes: start,
            });
            return finish(&part, dest, done, total).map_err(fail);
        }
        Err(fail(
            "the server does not continue the partial download; delete the .part file".to_string(),
        ))
    }

    /// Checks size and format, then renames the part file into place.
    fn finish(part: &Path, dest: &Path, done: u64, total: Option<u64>) -> Result<(), String> {
        if let Some(total) = total {
            if done != total {
                return Err(format!(
                    "the server closed the connection after {done} of {total} bytes; run again to resume"
                ));
            }
        }
        if let Err(e) = crate::weights::detect_format(part) {
            let _ = fs::remove_file(part);
            return Err(format!("the downloaded file is not a checkpoint ({e})"));
        }
        fs::rename(part, dest).map_err(|e| format!("could not move the download into place ({e})"))
    }

    fn remove_part(part: &Path) -> Result<(), ModelError> {
        match fs::remove_file(part) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ModelError::io("delete the stale partial download", part, e)),
        }
    }

    /// `<dest>.part` next to the destination (same directory, so the final rename is atomic).
    pub(super) fn part_path(dest: &Path) -> PathBuf {
        let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".part");
        dest.with_file_name(name)
    }

    /// `bytes 10-99/100` → `(Some(10), Some(100))`; `bytes */100` → `(None, Some(100))`.
    fn parse_content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
        let rest = v.trim().strip_prefix("bytes")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let total = total.trim().parse::<u64>().ok();
        let start = if range.trim() == "*" {
            None
        } else {
            Some(range.split_once('-')?.0.trim().parse::<u64>().ok()?)
        };
        Some((start, total))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn content_range_parsing() {
            assert_eq!(
                parse_content_range("bytes 10-99/100"),
                Some((Some(10), Some(100)))
            );
            assert_eq!(parse_content_range("bytes 0-0/*"), Some((Some(0), None)));
            assert_eq!(parse_content_range("bytes */100"), Some((None, Some(100))));
            assert_eq!(parse_content_range("items 1-2/3"), None);
            assert_eq!(
                part_path(Path::new("/c/depth_pro.pt")),
                PathBuf::from("/c/depth_pro.pt.part")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn cache_dir_follows_xdg_then_home() {
        let locator = WeightsLocator::default();
        let xdg = env_of(&[("XDG_CACHE_HOME", "/x/cache"), ("HOME", "/home/u")]);
        assert_eq!(
            locator.cache_file(&xdg),
            Some(PathBuf::from("/x/cache/depth2ply/depth_pro.pt"))
        );
        // A relative XDG_CACHE_HOME is invalid per the spec and ignored.
        let rel = env_of(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")]);
        assert_eq!(
            locator.cache_file(&rel),
            Some(PathBuf::from("/home/u/.cache/depth2ply/depth_pro.pt"))
        );
        assert_eq!(locator.cache_file(&env_of(&[])), None);
        let explicit = WeightsLocator {
            cache_dir: Some("/c".into()),
            ..WeightsLocator::default()
        };
        assert_eq!(
            explicit.cache_file(&env_of(&[])),
            Some(PathBuf::from("/c/depth_pro.pt"))
        );
    }

    #[test]
    fn endpoint_precedence() {
        let locator = WeightsLocator::default();
        assert_eq!(
            locator.download_url(&env_of(&[])),
            "https://huggingface.co/apple/DepthPro/resolve/main/depth_pro.pt"
        );
        let hf = env_of(&[("HF_ENDPOINT", "https://mirror.example/")]);
        assert_eq!(locator.effective_endpoint(&hf), "https://mirror.example");
        let both = env_of(&[
            ("HF_ENDPOINT", "https://a"),
            ("DEPTH2PLY_HF_ENDPOINT", "https://b"),
        ]);
        assert_eq!(locator.effective_endpoint(&both), "https://b");
        let field = WeightsLocator {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..WeightsLocator::default()
        };
        assert_eq!(field.effective_endpoint(&both), "http://127.0.0.1:9");
    }
}
