//! Console settings: `config/console.default.toml` embedded in the binary, overlaid by the
//! user's file. Unknown keys are errors that name the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::keymap::KeyList;

pub const CONSOLE_DEFAULTS: &str = include_str!("../../config/console.default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    pub console: General,
    pub notifications: Notifications,
    pub demo: Demo,
    pub keys: BTreeMap<String, KeyList>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    pub server: String,
    pub environment: String,
    pub theme: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    pub bell: bool,
    pub osc: bool,
    pub desktop: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Demo {
    pub agents: usize,
    pub rate: f64,
}

impl Default for General {
    fn default() -> Self {
        Self {
            server: String::new(),
            environment: String::new(),
            theme: "default".into(),
            read_only: false,
        }
    }
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            bell: true,
            osc: true,
            desktop: true,
        }
    }
}

impl Default for Demo {
    fn default() -> Self {
        Self {
            agents: 6,
            rate: 0.1,
        }
    }
}

impl ConsoleSettings {
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let settings: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.message().to_owned(),
        })?;
        if !(0.0..=1000.0).contains(&settings.demo.rate) || settings.demo.agents > 50 {
            return Err(ConfigError::Parse {
                path: origin.to_owned(),
                message: "demo.rate must be 0–1000 and demo.agents at most 50".into(),
            });
        }
        Ok(settings)
    }

    /// `path`, else `$XDG_CONFIG_HOME/sponsor-console/console.toml` if it exists, else the
    /// shipped defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let user = || crate::settings::user_config_file("console.toml");
        match path.map(Path::to_path_buf).or_else(user) {
            None => Self::from_toml(CONSOLE_DEFAULTS, Path::new("config/console.default.toml")),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::from_toml(&text, &path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses_and_matches_the_code_defaults() {
        let shipped = ConsoleSettings::from_toml(CONSOLE_DEFAULTS, Path::new("shipped"))
            .expect("the shipped console settings parse");
        let code = ConsoleSettings::default();
        assert_eq!(shipped.console.theme, code.console.theme);
        assert_eq!(shipped.demo.agents, code.demo.agents);
        assert_eq!(shipped.notifications.bell, code.notifications.bell);
        assert!(shipped.keys.is_empty());
    }

    #[test]
    fn bad_files_name_the_problem() {
        for (text, needle) in [
            ("[console]\nservr = \"x\"", "unknown field"),
            ("[console]\nread_only = \"yes\"", "invalid type"),
            ("[demo]\nrate = -1.0", "demo.rate"),
        ] {
            let err = ConsoleSettings::from_toml(text, Path::new("console.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("console.toml") && err.contains(needle),
                "{err}"
            );
        }
    }
}
