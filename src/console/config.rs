//! Console settings: `config/console.default.toml` embedded in the binary, overlaid by the
//! user's file. Unknown keys are errors that name the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::keymap::KeyList;
use crate::client::entra::EntraConfig;
use crate::settings::ConfigText;

pub const CONSOLE_DEFAULTS: &str = include_str!("../../config/console.default.toml");

/// A console settings file that cannot be used.
pub use crate::settings::FileError as ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    pub console: General,
    pub notifications: Notifications,
    pub demo: Demo,
    /// Microsoft Entra sign-in and PIM approvals; unset: none.
    pub entra: EntraConfig,
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
        Self::from_text(&ConfigText {
            text: text.to_owned().into(),
            origin: origin.to_owned(),
        })
    }

    fn from_text(file: &ConfigText) -> Result<Self, ConfigError> {
        let settings: Self = file.parse()?;
        if !(0.0..=1000.0).contains(&settings.demo.rate) || settings.demo.agents > 50 {
            return Err(file.invalid("demo.rate must be 0–1000 and demo.agents at most 50"));
        }
        if settings.entra.is_set() {
            settings.entra.check().map_err(|e| file.invalid(e))?;
        }
        Ok(settings)
    }

    /// `path`, else `$XDG_CONFIG_HOME/sponsor-console/console.toml` if it exists, else the
    /// shipped defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let user = || crate::settings::user_config_file("console.toml");
        let path = path.map(Path::to_path_buf).or_else(user);
        Self::from_text(&ConfigText::read(
            path.as_deref(),
            CONSOLE_DEFAULTS,
            "config/console.default.toml",
        )?)
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
        assert_eq!(shipped.entra, code.entra);
        assert!(!shipped.entra.is_set());
        assert!(shipped.keys.is_empty());
    }

    #[test]
    fn bad_files_name_the_problem() {
        for (text, needle) in [
            ("[console]\nservr = \"x\"", "unknown field"),
            ("[console]\nread_only = \"yes\"", "invalid type"),
            ("[demo]\nrate = -1.0", "demo.rate"),
            ("[entra]\ntenant = \"t\"", "tenant and client_id"),
            (
                "[entra]\ntenant = \"t\"\nclient_id = \"c\"\ngraph_url = \"http://graph.example\"",
                "entra.graph_url",
            ),
            ("[entra]\nclient = \"c\"", "unknown field"),
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
