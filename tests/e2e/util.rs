//! Running the real binary in a temporary folder, and readable assertions on its result.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh temporary folder to run the binary in; removed when dropped.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Runs `depth2ply ARGS` with this folder as the working directory and an environment in which no
    /// Depth Pro weights can be found (tests never depend on weights being installed).
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let output = Command::new(env!("CARGO_BIN_EXE_depth2ply"))
            .args(&args)
            .current_dir(self.path())
            .env("DEPTH2PLY_WEIGHTS", self.join("no-weights-here/depth_pro.pt"))
            .env("XDG_CACHE_HOME", self.join("cache"))
            .env("HOME", self.path())
            .env("RAYON_NUM_THREADS", "2")
            .env_remove("HF_HOME")
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .expect("run the depth2ply binary");
        Run {
            args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every file below this folder, relative, sorted (to check that nothing else was written).
    pub fn files(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push(
                        path.strip_prefix(root)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }
}

/// The result of one run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "\n--- depth2ply {}\n--- exit code: {:?}\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code{}", self.describe());
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Asserts that stderr contains every fragment (case-sensitive).
    #[track_caller]
    pub fn assert_stderr_has(&self, fragments: &[&str]) -> &Self {
        for fragment in fragments {
            assert!(
                self.stderr.contains(fragment),
                "stderr lacks {fragment:?}{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts that one `depth2ply: error:` line of stderr ends with `path` (errors end with the path).
    #[track_caller]
    pub fn assert_error_ends_with(&self, path: &Path) -> &Self {
        let path = path.display().to_string();
        assert!(
            self.stderr
                .lines()
                .any(|l| l.starts_with("depth2ply: error: ") && l.trim_end().ends_with(&path)),
            "no error line ending with {path}{}",
            self.describe()
        );
        self
    }

    /// The number of `depth2ply: error:` lines.
    pub fn error_lines(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("depth2ply: error: "))
            .count()
    }
}
