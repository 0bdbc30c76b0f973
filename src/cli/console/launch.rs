//! Starting the terminal console: settings, keymap and theme first (so a bad file is reported
//! before the screen is taken), then the embedded default or a signed-in session, then the app.

use std::path::PathBuf;
use std::sync::Arc;

use super::entra::EntraCli;
use super::print_prompt;
use crate::client::entra::EntraError;
use crate::client::entra::EntraTokens;
use crate::client::graph::{EntraApprovals, GraphError};
use crate::client::login::{self, LoginError};
use crate::client::session::{SessionError, SessionStore};
use crate::client::{ApiClient, ClientError};
use crate::clock::{SharedClock, SystemClock};
use crate::console::app::{self, Alerts, EntraLink, Keeper};
use crate::console::config::{ConfigError, ConsoleSettings};
use crate::console::keymap::{Keymap, KeymapError};
use crate::console::state::{Identity, State};
use crate::console::theme::Theme;
use crate::demo::embedded::{self, EmbeddedError};

/// The console's arguments, before anything is loaded.
#[derive(Debug)]
pub struct Launch {
    pub server: Option<String>,
    pub config: Option<PathBuf>,
    pub read_only: bool,
}

/// Why the console could not start or ended with an error. The wrapped errors keep their own
/// text and causes.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error(transparent)]
    Keymap(#[from] KeymapError),
    #[error("unknown theme {0:?}: use default, colour-blind or mono")]
    UnknownTheme(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Entra(#[from] EntraError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Terminal(#[from] std::io::Error),
}

/// A console ready to run: its settings read and checked, nothing started yet.
#[derive(Debug)]
pub struct Prepared {
    settings: ConsoleSettings,
    read_only: bool,
    keymap: Keymap,
    theme: Theme,
    alerts: Alerts,
    server: Option<String>,
    store: SessionStore,
}

impl Launch {
    /// Reads the settings, builds the keymap and picks the theme; finds where sessions (and
    /// the log file) live.
    pub fn prepare(self) -> Result<Prepared, LaunchError> {
        let settings = ConsoleSettings::load(self.config.as_deref())?;
        let read_only = self.read_only || settings.console.read_only;
        let keymap = Keymap::new(&settings.keys, read_only)?;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let theme = Theme::by_name(&settings.console.theme, no_color)
            .ok_or_else(|| LaunchError::UnknownTheme(settings.console.theme.clone()))?;
        let alerts = Alerts {
            bell: settings.notifications.bell,
            osc: settings.notifications.osc,
            desktop: settings.notifications.desktop,
        };
        let server = self.server.or_else(|| {
            (!settings.console.server.is_empty()).then(|| settings.console.server.clone())
        });
        let store = SessionStore::default_location()?;
        Ok(Prepared {
            settings,
            read_only,
            keymap,
            theme,
            alerts,
            server,
            store,
        })
    }
}

impl Prepared {
    /// With `[entra]` set: the Entra sign-in (the one given, or the saved one, or a new device
    /// sign-in before the screen is taken) and the PIM sources over it.
    async fn entra(
        &self,
        clock: &SharedClock,
        tokens: Option<&EntraTokens>,
    ) -> Result<Option<(EntraLink, String)>, LaunchError> {
        if !self.settings.entra.is_set() {
            return Ok(None);
        }
        let tokens = match tokens {
            Some(t) => t.clone(),
            None => {
                EntraCli::new(self.settings.entra.clone(), &self.store, clock.clone())?
                    .signed_in()
                    .await?
            }
        };
        let identity = tokens.identity().clone();
        let approvals = EntraApprovals::for_tokens(&tokens, clock.clone())?;
        Ok(Some((
            EntraLink::new(approvals, Some(identity.tenant_id)),
            identity.object_id,
        )))
    }

    /// The state to start from, showing Entra's approvals too when `[entra]` is set.
    fn state(&self, identity: Identity, entra: Option<&(EntraLink, String)>) -> State {
        let mut state = State::new(identity, self.keymap.clone(), self.read_only);
        if let Some((_, me)) = entra {
            state.enable_entra(
                me.clone(),
                self.settings.entra.poll_interval(),
                chrono::Utc::now(),
            );
        }
        state
    }

    /// The console logs here, never to the terminal it draws on.
    pub fn log_file(&self) -> PathBuf {
        self.store.dir().join("console.log")
    }

    /// Runs the console until the user quits: on the embedded default without a server,
    /// else on the saved session (signing in first with the device flow if there is none).
    pub async fn run(self) -> Result<(), LaunchError> {
        let clock: SharedClock = Arc::new(SystemClock);
        let environment = self.settings.console.environment.clone();
        match self.server.clone() {
            None => {
                let dir = embedded::data_dir();
                eprintln!(
                    "Starting the embedded governance server ({})…",
                    dir.display()
                );
                let demo = &self.settings.demo;
                let tenant = embedded::start_embedded(&dir, demo.agents, demo.rate).await?;
                let api = ApiClient::new(&tenant.server.base_url())?;
                let identity = Identity {
                    username: tenant.sponsor.username.clone(),
                    server: tenant.server.base_url(),
                    environment,
                    embedded: true,
                };
                let entra = match self.entra(&clock, None).await {
                    Ok(entra) => entra,
                    Err(e) => {
                        tenant.shutdown().await?;
                        return Err(e);
                    }
                };
                let state = self.state(identity, entra.as_ref());
                let keeper = Keeper::new(api, tenant.session.clone(), None, clock);
                let link = entra.map(|(link, _)| link);
                let ran = app::run(state, keeper, link, self.theme, self.alerts).await;
                tenant.shutdown().await?;
                ran?;
            }
            Some(server) if self.settings.entra.api_scope().is_some() => {
                // One Entra sign-in; the server trusts Entra for its API scope.
                let api = ApiClient::new(&server)?;
                let entra = EntraCli::new(self.settings.entra.clone(), &self.store, clock.clone())?;
                let tokens = entra.signed_in().await?;
                let identity = Identity {
                    username: tokens.identity().label().to_owned(),
                    server: api.base().to_owned(),
                    environment,
                    embedded: false,
                };
                let entra = self.entra(&clock, Some(&tokens)).await?;
                let state = self.state(identity, entra.as_ref());
                let keeper = Keeper::entra(api, tokens, Some(self.store), clock);
                let link = entra.map(|(link, _)| link);
                app::run(state, keeper, link, self.theme, self.alerts).await?;
            }
            Some(server) => {
                let api = ApiClient::new(&server)?;
                let entra = self.entra(&clock, None).await?;
                let store = self.store.clone();
                let session = match login::current_session(&api, &store, &clock).await {
                    Ok(s) => s,
                    Err(LoginError::NotSignedIn(_) | LoginError::SessionEnded(_)) => {
                        let s =
                            login::device_login(&api, clock.clone(), login::real_sleep, |prompt| {
                                print_prompt(&prompt);
                                async {}
                            })
                            .await?;
                        store.save(&s)?;
                        s
                    }
                    Err(e) => return Err(e.into()),
                };
                let identity = Identity {
                    username: session.username.clone().unwrap_or_default(),
                    server: api.base().to_owned(),
                    environment,
                    embedded: false,
                };
                let state = self.state(identity, entra.as_ref());
                let keeper = Keeper::new(api, session, Some(store), clock);
                let link = entra.map(|(link, _)| link);
                app::run(state, keeper, link, self.theme, self.alerts).await?;
            }
        }
        Ok(())
    }
}
