//! Finding the weights: explicit path, environment variable, cache, and (feature `hub`) a resumable
//! download from a hub-like HTTP server started on 127.0.0.1 by the test.

// Test helpers outside `#[test]` functions unwrap on purpose: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use depth2ply_model::error::ModelError;
use depth2ply_model::locate::{WeightsLocator, WeightsOrigin, WEIGHTS_ENV};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An environment made of the given pairs only.
fn env_of(pairs: Vec<(&'static str, OsString)>) -> impl Fn(&str) -> Option<OsString> {
    move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
}

fn locator_in(cache: &Path) -> WeightsLocator {
    WeightsLocator {
        cache_dir: Some(cache.to_path_buf()),
        allow_download: false,
        ..WeightsLocator::default()
    }
}

#[test]
fn explicit_path_wins_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("tiny_apple_fp16.pt");
    let env = env_of(vec![(WEIGHTS_ENV, dir.path().join("other.pt").into())]);
    let locator = WeightsLocator {
        explicit: Some(weights.clone()),
        ..locator_in(dir.path())
    };
    let found = locator.locate_with_env(&env, &mut |_| {}).unwrap();
    assert_eq!((found.path, found.origin), (weights, WeightsOrigin::Explicit));

    let missing = dir.path().join("nope.pt");
    let locator = WeightsLocator {
        explicit: Some(missing.clone()),
        ..locator_in(dir.path())
    };
    let err = locator.locate_with_env(&env, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::WeightsPathMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("--weights") && err.to_string().ends_with(&missing.display().to_string())
    );
}

#[test]
fn environment_variable_then_cache() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("tiny_apple.safetensors");
    let env = env_of(vec![(WEIGHTS_ENV, weights.clone().into())]);
    let found = locator_in(dir.path()).locate_with_env(&env, &mut |_| {}).unwrap();
    assert_eq!((found.path, found.origin), (weights, WeightsOrigin::Environment));

    // A stale variable is an error, not a silent fall-through to the cache.
    let env = env_of(vec![(WEIGHTS_ENV, dir.path().join("gone.pt").into())]);
    let err = locator_in(dir.path())
        .locate_with_env(&env, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains(WEIGHTS_ENV), "{err}");

    // With use_env off, or the variable unset, the cache file is used.
    let cached = dir.path().join("depth_pro.pt");
    std::fs::copy(fixture("tiny_apple_fp16.pt"), &cached).unwrap();
    let no_env = WeightsLocator {
        use_env: false,
        ..locator_in(dir.path())
    };
    let found = no_env.locate_with_env(&env, &mut |_| {}).unwrap();
    assert_eq!((found.path, found.origin), (cached.clone(), WeightsOrigin::Cache));
    let found = locator_in(dir.path())
        .locate_with_env(&env_of(vec![]), &mut |_| {})
        .unwrap();
    assert_eq!((found.path, found.origin), (cached, WeightsOrigin::Cache));
}

#[test]
fn default_cache_is_under_xdg_cache_home() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("depth2ply")).unwrap();
    std::fs::copy(fixture("tiny_apple_fp16.pt"), xdg.join("depth2ply/depth_pro.pt")).unwrap();
    let env = env_of(vec![
        ("XDG_CACHE_HOME", xdg.clone().into()),
        ("HOME", dir.path().join("home").into()),
    ]);
    let locator = WeightsLocator {
        allow_download: false,
        ..WeightsLocator::default()
    };
    let found = locator.locate_with_env(&env, &mut |_| {}).unwrap();
    assert_eq!(
        (found.path, found.origin),
        (xdg.join("depth2ply/depth_pro.pt"), WeightsOrigin::Cache)
    );
}

#[test]
fn not_found_says_where_to_put_and_get_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = locator_in(dir.path())
        .locate_with_env(&env_of(vec![]), &mut |_| {})
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelError::WeightsNotFound { .. }), "{text}");
    for needle in [
        "--weights",
        "DEPTH2PLY_WEIGHTS",
        "downloading is disabled",
        "https://huggingface.co/apple/DepthPro",
        "https://ml-site.cdn-apple.com/models/depth-pro/depth_pro.pt",
        "apple-amlr",
        "commercial use is unclear",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    assert!(
        text.ends_with(&dir.path().join("depth_pro.pt").display().to_string()),
        "{text}"
    );
}

#[cfg(not(feature = "hub"))]
#[test]
fn without_the_hub_feature_no_download_is_attempted() {
    let dir = tempfile::tempdir().unwrap();
    let locator = WeightsLocator {
        allow_download: true,
        ..locator_in(dir.path())
    };
    let err = locator.locate_with_env(&env_of(vec![]), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("without the `hub` feature"), "{err}");
    assert!(
        err.to_string()
            .contains("https://huggingface.co/apple/DepthPro/resolve/main/depth_pro.pt"),
        "{err}"
    );
}

#[cfg(feature = "hub")]
mod hub {
    use super::*;
    use depth2ply_model::locate::DownloadProgress;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    /// Path and `Range` header of one request.
    type Logged = (String, Option<String>);

    /// How the fake server misbehaves.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mode {
        Normal,
        /// The first file request sends the full Content-Length but only this many bytes, then closes.
        CutFirstAfter(usize),
        /// Answers 200 with the whole file even when a Range is asked for.
        IgnoreRange,
        /// Every request gets 404, like a missing hub file.
        NotFound,
    }

    /// A tiny HTTP/1.1 server imitating the hub: `/{repo}/resolve/{rev}/{file}` answers 302 to a
    /// storage URL (with the hub's x-repo-commit / etag / x-linked-size headers); the storage URL
    /// serves the bytes with Range support. Records the path and Range header of every request.
    struct FakeHub {
        endpoint: String,
        log: Arc<Mutex<Vec<Logged>>>,
        /// Paths of the requests that carried an `Authorization` header.
        authorized: Arc<Mutex<Vec<String>>>,
    }

    impl FakeHub {
        fn start(data: Vec<u8>, mode: Mode) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let log = Arc::new(Mutex::new(Vec::new()));
            let thread_log = Arc::clone(&log);
            let authorized = Arc::new(Mutex::new(Vec::new()));
            let thread_authorized = Arc::clone(&authorized);
            std::thread::spawn(move || {
                let mut file_requests = 0usize;
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let _ = serve(
                        stream,
                        &data,
                        mode,
                        (&thread_log, &thread_authorized),
                        &mut file_requests,
                    );
                }
            });
            Self {
                endpoint,
                log,
                authorized,
            }
        }

        fn log(&self) -> Vec<Logged> {
            self.log.lock().unwrap().clone()
        }
    }

    fn serve(
        mut stream: TcpStream,
        data: &[u8],
        mode: Mode,
        (log, authorized): (&Mutex<Vec<Logged>>, &Mutex<Vec<String>>),
        file_requests: &mut usize,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("range") {
                    range = Some(v.trim().to_string());
                }
                if k.eq_ignore_ascii_case("authorization") && v.trim() == "Bearer secret-token" {
                    authorized.lock().unwrap().push(path.clone());
                }
            }
        }
        log.lock().unwrap().push((path.clone(), range.clone()));
        let len = data.len();
        if mode == Mode::NotFound {
            let body = "Entry not found";
            return write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        if path == "/apple/DepthPro/resolve/main/depth_pro.pt" {
            return write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: /storage/blob/depth_pro.pt\r\nx-repo-commit: 0123456789abcdef\r\n\
                 etag: \"deadbeef\"\r\nx-linked-size: {len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        if path != "/storage/blob/depth_pro.pt" {
            return write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        *file_requests += 1;
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|s| s.parse::<usize>().ok());
        match start {
            Some(start) if mode != Mode::IgnoreRange && start >= len => write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            Some(start) if mode != Mode::IgnoreRange => {
                write!(
                    stream,
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\nContent-Length: {}\r\n\
                     Accept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                    len - 1,
                    len - start
                )?;
                stream.write_all(&data[start..])
            }
            _ => {
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n")?;
                match mode {
                    Mode::CutFirstAfter(cut) if *file_requests == 1 => {
                        stream.write_all(&data[..cut])?;
                        stream.flush()?;
                        stream.shutdown(std::net::Shutdown::Both)
                    }
                    _ => stream.write_all(data),
                }
            }
        }
    }

    fn hub_locator(cache: &Path, hub: &FakeHub) -> WeightsLocator {
        WeightsLocator {
            cache_dir: Some(cache.to_path_buf()),
            allow_download: true,
            endpoint: Some(hub.endpoint.clone()),
            ..WeightsLocator::default()
        }
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn downloads_into_the_cache_then_finds_it_there() {
        let data = std::fs::read(fixture("tiny_apple_fp16.pt")).unwrap();
        let hub = FakeHub::start(data.clone(), Mode::Normal);
        let cache = tempfile::tempdir().unwrap();
        let locator = hub_locator(cache.path(), &hub);
        let mut reports: Vec<DownloadProgress> = Vec::new();
        let found = locator
            .locate_with_env(&no_env, &mut |p| reports.push(p))
            .unwrap();
        let url = format!("{}/apple/DepthPro/resolve/main/depth_pro.pt", hub.endpoint);
        assert_eq!(found.origin, WeightsOrigin::Downloaded { url });
        assert_eq!(found.path, cache.path().join("depth_pro.pt"));
        assert_eq!(std::fs::read(&found.path).unwrap(), data);
        assert!(!cache.path().join("depth_pro.pt.part").exists());
        let last = reports.last().copied().unwrap();
        assert_eq!(
            (last.downloaded_bytes, last.total_bytes),
            (data.len() as u64, Some(data.len() as u64))
        );
        // The redirect was followed: resolve URL, then storage URL.
        let paths: Vec<String> = hub.log().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "/apple/DepthPro/resolve/main/depth_pro.pt",
                "/storage/blob/depth_pro.pt"
            ]
        );
        // The downloaded file loads.
        let w =
            depth2ply_model::load_weights(&found.path, candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
        assert_eq!(w.len(), 195);
        // Second call: from the cache, no request.
        let again = locator.locate_with_env(&no_env, &mut |_| {}).unwrap();
        assert_eq!(again.origin, WeightsOrigin::Cache);
        assert_eq!(hub.log().len(), 2);
    }

    #[test]
    fn an_interrupted_download_resumes_with_a_range_request() {
        let data = std::fs::read(fixture("tiny_apple_fp16.pt")).unwrap();
        let cut = 700_000;
        let hub = FakeHub::start(data.clone(), Mode::CutFirstAfter(cut));
        let cache = tempfile::tempdir().unwrap();
        let locator = hub_locator(cache.path(), &hub);
        let part = cache.path().join("depth_pro.pt.part");

        let err = locator.locate_with_env(&no_env, &mut |_| {}).unwrap_err();
        assert!(matches!(err, ModelError::Download { .. }), "{err}");
        assert!(err.to_string().contains("run again to resume"), "{err}");
        assert!(err.to_string().ends_with(&part.display().to_string()), "{err}");
        assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);
        assert!(!cache.path().join("depth_pro.pt").exists());

        let mut reports: Vec<DownloadProgress> = Vec::new();
        let found = locator
            .locate_with_env(&no_env, &mut |p| reports.push(p))
            .unwrap();
        assert_eq!(std::fs::read(&found.path).unwrap(), data);
        assert_eq!(reports.last().unwrap().resumed_from_bytes, cut as u64);
        // The second storage request asked for the rest only (the Range survived the redirect).
        let storage: Vec<Option<String>> = hub
            .log()
            .into_iter()
            .filter(|(p, _)| p.starts_with("/storage/"))
            .map(|(_, r)| r)
            .collect();
        assert_eq!(storage, [None, Some(format!("bytes={cut}-"))]);
    }

    #[test]
    fn a_server_ignoring_range_restarts_from_zero() {
        let data = std::fs::read(fixture("tiny_apple_fp16.pt")).unwrap();
        let hub = FakeHub::start(data.clone(), Mode::IgnoreRange);
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(cache.path().join("depth_pro.pt.part"), vec![7u8; 1000]).unwrap();
        let found = hub_locator(cache.path(), &hub)
            .locate_with_env(&no_env, &mut |_| {})
            .unwrap();
        assert_eq!(std::fs::read(&found.path).unwrap(), data);
    }

    #[test]
    fn a_complete_part_file_is_finished_without_data() {
        let data = std::fs::read(fixture("tiny_apple_fp16.pt")).unwrap();
        let hub = FakeHub::start(data.clone(), Mode::Normal);
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(cache.path().join("depth_pro.pt.part"), &data).unwrap();
        let found = hub_locator(cache.path(), &hub)
            .locate_with_env(&no_env, &mut |_| {})
            .unwrap();
        assert_eq!(std::fs::read(&found.path).unwrap(), data);
        let last = hub.log().last().cloned().unwrap();
        assert_eq!(last.1, Some(format!("bytes={}-", data.len())));
    }

    #[test]
    fn a_missing_remote_file_explains_what_to_do() {
        let hub = FakeHub::start(Vec::new(), Mode::NotFound);
        let cache = tempfile::tempdir().unwrap();
        let err = hub_locator(cache.path(), &hub)
            .locate_with_env(&no_env, &mut |_| {})
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "HTTP 404",
            "https://huggingface.co/apple/DepthPro",
            "--weights",
            "apple-amlr",
            "HF_ENDPOINT",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
        assert!(!cache.path().join("depth_pro.pt").exists());
    }

    #[test]
    fn a_non_checkpoint_download_is_rejected() {
        let hub = FakeHub::start(b"<html>rate limited</html>".to_vec(), Mode::Normal);
        let cache = tempfile::tempdir().unwrap();
        let err = hub_locator(cache.path(), &hub)
            .locate_with_env(&no_env, &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("not a checkpoint"), "{err}");
        assert!(!cache.path().join("depth_pro.pt").exists());
        assert!(!cache.path().join("depth_pro.pt.part").exists());
    }

    #[test]
    fn the_token_goes_to_the_endpoint_but_not_to_the_storage_host() {
        let data = std::fs::read(fixture("tiny_apple_fp16.pt")).unwrap();
        let hub = FakeHub::start(data, Mode::Normal);
        let cache = tempfile::tempdir().unwrap();
        let env = env_of(vec![("HF_TOKEN", "secret-token".into())]);
        hub_locator(cache.path(), &hub)
            .locate_with_env(&env, &mut |_| {})
            .unwrap();
        // Same host here, but ureq's default policy never forwards credentials on redirects.
        assert_eq!(
            *hub.authorized.lock().unwrap(),
            ["/apple/DepthPro/resolve/main/depth_pro.pt"]
        );
    }
}
