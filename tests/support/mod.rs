//! Runs an example server as a child process for black-box tests, and reads what it prints.
//!
//! The examples print each email (with its link) to standard output in their demo set-up, so a
//! test learns the links exactly as a user reading the email would.

#![allow(dead_code, reason = "each test file uses the parts it needs")]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use ureq::Agent;

fn example_path(example: &str) -> PathBuf {
    // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    profile_dir.join("examples").join(example)
}

/// Builds the examples once per test binary, so a test never runs a stale server.
fn build_examples() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--example",
                "axum",
                "--example",
                "actix",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the examples must build");
    });
}

/// A command running `example` (built first) with an empty environment.
pub(crate) fn example_command(example: &str) -> Command {
    build_examples();
    let mut command = Command::new(example_path(example));
    command.env_clear();
    command
}

/// A running example server; killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    output: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `example` with exactly `env` as its environment (plus a free loopback port).
    pub(crate) fn start(example: &str, env: &[(&str, &str)]) -> Self {
        let mut child = example_command(example)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_LEVEL", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("example starts");

        let output = collect_lines(child.stdout.take().expect("piped stdout"));
        let log = collect_lines(child.stderr.take().expect("piped stderr"));
        let mut server = Self {
            child,
            base: String::new(),
            output,
            log,
        };
        let line = server.wait_for_line(|line| line.contains("listening on http://"));
        server.base = line
            .split("listening on ")
            .nth(1)
            .expect("address in banner")
            .trim()
            .to_owned();
        server
    }

    /// Waits (up to 20 s) for an output line matching `wanted` and returns it.
    pub(crate) fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.output.lock().unwrap().iter().find(|line| wanted(line)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited with {status}: {:?}",
                    self.output.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out; output: {:?}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything logged (standard error) so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Everything printed so far.
    pub(crate) fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The links of all emails printed so far, oldest first.
    pub(crate) fn links(&self) -> Vec<String> {
        self.output()
            .iter()
            .filter_map(|line| line.strip_prefix("Set your password: "))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `count` emails have been printed, and returns their links.
    pub(crate) fn wait_for_links(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let links = self.links();
            if links.len() >= count {
                return links;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} emails: {:?}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits (up to 10 s) for the process to end; returns whether it exited
    /// successfully.
    pub(crate) fn terminate(&mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("process status") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The full URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects the lines of a child's output stream as they arrive.
fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// The token of a set-password link.
pub(crate) fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .expect("token in link")
        .to_owned()
}

/// An HTTP client that returns every status as a response, not an error.
pub(crate) fn client() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Writes a seed file into a fresh temporary path and returns the path.
pub(crate) fn seed_file(json: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!(
        "password-setup-seed-{}-{n}.json",
        std::process::id()
    ));
    std::fs::write(&path, json).expect("seed file written");
    path
}
