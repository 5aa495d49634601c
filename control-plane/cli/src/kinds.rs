//! The resource kinds `get` and `delete` know: where they live in the API and which fields a
//! table shows.

use clap::ValueEnum;

use crate::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Provider accounts.
    #[value(alias = "account", alias = "provider-accounts")]
    Accounts,
    /// Integrations of one account (`--account`).
    #[value(alias = "integration")]
    Integrations,
    /// API keys; `delete` revokes.
    #[value(alias = "key", alias = "api-keys")]
    Keys,
    #[value(alias = "user")]
    Users,
    #[value(alias = "team")]
    Teams,
    #[value(alias = "virtual-account")]
    VirtualAccounts,
}

impl Kind {
    /// The collection path under `/api/v1`.
    pub fn collection(self, account: Option<&str>) -> Result<String, CliError> {
        Ok(match self {
            Kind::Accounts => "/provider-accounts".to_owned(),
            Kind::Integrations => {
                let account = account.ok_or_else(|| {
                    CliError::Usage("integrations belong to an account: pass --account".into())
                })?;
                format!("/provider-accounts/{account}/integrations")
            }
            Kind::Keys => "/api-keys".to_owned(),
            Kind::Users => "/users".to_owned(),
            Kind::Teams => "/teams".to_owned(),
            Kind::VirtualAccounts => "/virtual-accounts".to_owned(),
        })
    }

    /// The path of the object named `name`.
    pub fn item(self, account: Option<&str>, name: &str) -> Result<String, CliError> {
        Ok(format!("{}/{name}", self.collection(account)?))
    }

    /// The fields a table shows, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Accounts => &["name", "endpoint_type", "collaborators", "updated_at"],
            Kind::Integrations => &["name", "base_url", "authorized_subjects", "updated_at"],
            Kind::Keys => &[
                "id",
                "name",
                "owner",
                "expires_at",
                "revoked_at",
                "last_used_at",
            ],
            Kind::Users | Kind::VirtualAccounts => &["subject", "is_admin", "created_at"],
            Kind::Teams => &["name", "members", "created_at"],
        }
    }
}
