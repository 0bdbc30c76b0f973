//! Logging. Servers and command-line tools log to stderr; the terminal UI logs to a file
//! because it owns the screen. `RUST_LOG` overrides the default level. Nothing that sees a
//! token or a password logs it.

use std::path::Path;

use tracing_subscriber::EnvFilter;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise.
pub fn init_stderr(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Logs to a file (appending, created 0600), never to the terminal.
pub fn init_file(path: &Path, default: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}
