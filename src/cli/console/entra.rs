//! The headless commands with `[entra]` set: `login` signs in to Microsoft Entra with the device
//! flow (one sign-in for Graph and the governance server), `whoami` shows the Entra identity and
//! the roles the governance server gives it, `logout` forgets the sign-in.

use std::cell::Cell;

use serde::Serialize;

use super::HeadlessError;
use crate::cli::exit;
use crate::cli::output::print_json;
use crate::client::ApiClient;
use crate::client::entra::{
    EntraAccountStore, EntraConfig, EntraError, EntraIdentity, EntraPrompt, EntraTokens, PollEvent,
    Resource, sign_in,
};
use crate::client::session::SessionStore;
use crate::clock::SharedClock;
use crate::console::safe_text::one_line as safe;
use crate::protocol::agents::Me;

/// Entra as the headless commands use it: the settings, where the sign-in is kept, the clock.
#[derive(Debug)]
pub struct EntraCli {
    pub config: EntraConfig,
    pub store: EntraAccountStore,
    pub clock: SharedClock,
    http: reqwest::Client,
}

fn local(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The device flow's instructions: the URL, the code, Entra's own message and a QR code of the
/// URL (Entra sends no complete URL with the code in it).
fn print_prompt(prompt: &EntraPrompt) {
    println!(
        "To sign in to Microsoft Entra, open {}",
        safe(&prompt.verification_uri)
    );
    println!("and enter the code {}", safe(&prompt.user_code));
    if let Some(message) = &prompt.message {
        println!("{}", safe(message));
    }
    if let Ok(code) = qrcode::QrCode::new(prompt.verification_uri.as_bytes()) {
        let qr = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        println!("{qr}");
    }
    println!(
        "Waiting for the sign-in (the code expires in {} minutes)…",
        prompt.expires_in.as_secs().div_ceil(60)
    );
}

#[derive(Serialize)]
struct WhoAmI<'a> {
    entra: &'a EntraIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a Me>,
}

impl EntraCli {
    pub fn new(
        config: EntraConfig,
        sessions: &SessionStore,
        clock: SharedClock,
    ) -> Result<Self, EntraError> {
        config.check().map_err(EntraError::Config)?;
        let http = config.http_client()?;
        Ok(Self {
            config,
            store: EntraAccountStore::beside(sessions),
            clock,
            http,
        })
    }

    /// The saved sign-in's tokens.
    pub fn tokens(&self) -> Result<EntraTokens, EntraError> {
        EntraTokens::load(
            self.config.clone(),
            self.http.clone(),
            self.store.clone(),
            self.clock.clone(),
        )
    }

    /// A client of the governance server holding the Entra token for its API scope.
    pub async fn governance(&self, api: &ApiClient) -> Result<ApiClient, EntraError> {
        let token = self.tokens()?.governance_token().await?;
        Ok(api.with_token(token.secret))
    }

    /// The device flow with its lines on stdout; the sign-in is saved.
    async fn device_sign_in(&self) -> Result<EntraTokens, EntraError> {
        let waiting = Cell::new(false);
        let account = sign_in(
            &self.config,
            &self.http,
            self.clock.clone(),
            |d| tokio::time::sleep(d),
            |prompt| {
                print_prompt(&prompt);
                async {}
            },
            |event| match event {
                PollEvent::Pending if !waiting.replace(true) => {
                    println!(
                        "authorization_pending: nobody has finished signing in yet; still polling"
                    );
                }
                PollEvent::Pending => {}
                PollEvent::SlowDown => println!(
                    "slow_down: Entra asked for fewer polls; waiting 5 s longer between them from now on"
                ),
            },
        )
        .await?;
        let path = self.store.save(&account)?;
        let who = &account.identity;
        println!(
            "Signed in to Microsoft Entra as {} ({}), tenant {}. Sign-in saved to {}.",
            safe(who.label()),
            safe(who.display_name.as_deref().unwrap_or("?")),
            safe(&who.tenant_id),
            path.display()
        );
        Ok(EntraTokens::new(
            self.config.clone(),
            self.http.clone(),
            Some(self.store.clone()),
            self.clock.clone(),
            account,
        ))
    }

    /// The saved sign-in's tokens for the governance server, signing in first (device flow)
    /// when there is none or it has ended: what the terminal console starts with.
    pub async fn signed_in(&self) -> Result<EntraTokens, EntraError> {
        let tokens = match self.tokens() {
            Ok(tokens) => tokens,
            Err(EntraError::NotSignedIn { .. }) => return self.device_sign_in().await,
            Err(e) => return Err(e),
        };
        match tokens.governance_token().await {
            Ok(_) => Ok(tokens),
            Err(EntraError::SignInEnded { .. }) => self.device_sign_in().await,
            Err(e) => Err(e),
        }
    }

    /// `login`: the device flow, then (with `api_scope`) the governance server asked who the
    /// new token is.
    pub async fn login(&self, api: &ApiClient) -> Result<u8, HeadlessError> {
        let tokens = self.device_sign_in().await?;
        if self.config.api_scope().is_none() {
            println!("entra.api_scope is not set: the governance server is not signed in to.");
            return Ok(exit::SUCCESS);
        }
        let token = tokens.governance_token().await?;
        let me = api.with_token(token.secret).me().await?;
        println!(
            "The governance server at {} knows you as {} with roles: {}.",
            api.base(),
            safe(&me.sub),
            if me.roles.is_empty() {
                "none".to_owned()
            } else {
                me.roles.join(", ")
            }
        );
        Ok(exit::SUCCESS)
    }

    /// `whoami`: the Entra identity, and what the governance server makes of it.
    pub async fn whoami(&self, api: &ApiClient, json: bool) -> Result<u8, HeadlessError> {
        let tokens = self.tokens()?;
        let me = match self.config.api_scope() {
            Some(_) => {
                let token = tokens.governance_token().await?;
                Some(api.with_token(token.secret).me().await?)
            }
            None => None,
        };
        let who = tokens.identity();
        if json {
            print_json(&WhoAmI {
                entra: who,
                server: me.as_ref(),
            })?;
            return Ok(exit::SUCCESS);
        }
        println!(
            "{} ({}), Microsoft Entra tenant {}, object id {}",
            safe(who.display_name.as_deref().unwrap_or(who.label())),
            safe(who.label()),
            safe(&who.tenant_id),
            safe(&who.object_id)
        );
        match &me {
            Some(me) => println!(
                "on {}: {}\nroles: {}",
                api.base(),
                safe(&me.sub),
                me.roles.join(", ")
            ),
            None => println!("(entra.api_scope is not set: no governance server sign-in)"),
        }
        for (what, resource) in [
            ("Graph", Resource::Graph),
            ("governance", Resource::Governance),
        ] {
            if let Some(at) = tokens.expires_at(resource).await {
                println!("{what} token valid until {}", local(at));
            }
        }
        Ok(exit::SUCCESS)
    }

    /// `logout`: forgets the sign-in here (Entra has no revocation endpoint for a public
    /// client; the refresh token lapses or is revoked with the person's sessions).
    pub fn logout(&self) -> Result<u8, HeadlessError> {
        if self
            .store
            .remove(&self.config.authority(), self.config.client_id.trim())?
        {
            println!(
                "Signed out of Microsoft Entra (tenant {}): the tokens are forgotten here.",
                safe(&self.config.tenant)
            );
        } else {
            println!(
                "Not signed in to Microsoft Entra (tenant {}).",
                safe(&self.config.tenant)
            );
        }
        Ok(exit::SUCCESS)
    }
}
