//! The provisioning port: what applies a license to the licensed software, and what it is
//! handed. The jobs that call it are [`crate::provisioning`]'s; this module sits below the
//! use-case context that holds the provisioner in use.
use licentia_domain::license_record::License;

/// Applies a license to the licensed software. `Ctx::provisioner` holds the one in use
/// (the local one unless a deployment or a test plugs in another).
pub trait Provisioner: Send + Sync {
    /// Provisions `job.license` as it now is (an activation, a modification, a re-enable).
    /// An error is retried with backoff; its text is shown as the license's
    /// `provisioning_error` (with the administrator password, if it appears, redacted).
    fn apply(&self, job: &ProvisionJob<'_>) -> Result<(), String>;
}

/// What a provisioning job hands the provisioner.
#[derive(Debug)]
pub struct ProvisionJob<'a> {
    /// The license, as it now is.
    pub license: &'a License,
    /// The license's administrator password, decrypted ("to gain access to the server");
    /// `None` when the license has none.
    pub admin_password: Option<&'a AdminPassword>,
}

/// A decrypted administrator password. It never prints: `Debug` shows `[redacted]` and there
/// is no `Display`; [`AdminPassword::expose`] is the one way to read it.
pub struct AdminPassword(String);

impl AdminPassword {
    pub fn new(password: String) -> Self {
        Self(password)
    }

    /// The password itself, for the provisioner to log in with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the password replaced, so that a provisioner's error
    /// message cannot carry it into the license, an event or the log.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "[redacted]")
        }
    }
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPassword([redacted])")
    }
}

/// Issues licenses locally: nothing external to call, always succeeds.
pub struct LocalProvisioner;

impl Provisioner for LocalProvisioner {
    fn apply(&self, _job: &ProvisionJob<'_>) -> Result<(), String> {
        Ok(())
    }
}
