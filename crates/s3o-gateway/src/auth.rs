//! SigV4 keys that can be replaced while serving (SIGHUP): s3s asks for a secret per request,
//! so swapping the map takes effect on the next request and never mid-request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::config::Credential;

/// The access key → secret map s3s consults, and which keys are admins.
#[derive(Clone, Default)]
pub(crate) struct Keys(
    Arc<RwLock<BTreeMap<String, SecretKey>>>,
    Arc<RwLock<BTreeSet<String>>>,
);

impl Keys {
    /// Keys holding `credentials`.
    pub(crate) fn new(credentials: &[Credential]) -> Self {
        let keys = Keys::default();
        keys.replace(credentials);
        keys
    }

    /// Replaces every key at once.
    pub(crate) fn replace(&self, credentials: &[Credential]) {
        let map = credentials
            .iter()
            .map(|c| (c.access_key.clone(), SecretKey::from(c.secret_key.clone())))
            .collect();
        let admins = credentials
            .iter()
            .filter(|c| c.admin)
            .map(|c| c.access_key.clone())
            .collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = map;
        *self.1.write().unwrap_or_else(|e| e.into_inner()) = admins;
    }

    /// True when `access_key` carries `admin = true` in the configuration now.
    pub(crate) fn is_admin(&self, access_key: &str) -> bool {
        self.1
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(access_key)
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        match map.get(access_key) {
            Some(k) => Ok(k.clone()),
            // The answer s3s's own SimpleAuth gives for an unknown key.
            None => Err(s3_error!(NotSignedUp, "Your account is not signed up")),
        }
    }
}
