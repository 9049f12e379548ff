//! Ownership and ACLs as a single-owner store can honestly answer them.
//!
//! The gateway has one owner (`[owner]` in the configuration): every configured credential
//! acts as it, and nothing is granted to anyone else. So GetBucketAcl/GetObjectAcl answer the
//! owner with `FULL_CONTROL`, listings name the owner, and PutBucketAcl/PutObjectAcl accept
//! exactly what leaves that true: the `private` canned ACL (and `bucket-owner-full-control` for
//! an object, the same thing here), or a policy or `x-amz-grant-full-control` granting only the
//! owner `FULL_CONTROL`. Anything granting another user, a group or anonymous access is
//! refused with `AccessControlListNotSupported`, S3's answer when ACLs are disabled, and
//! changes nothing. ACL headers on CreateBucket/PutObject/CopyObject are not read here.

use super::*;

/// The owner S3 answers name.
#[derive(Clone, Debug)]
pub(crate) struct OwnerId {
    /// Canonical user id.
    pub(crate) id: String,
    /// Display name.
    pub(crate) display_name: String,
}

impl Default for OwnerId {
    fn default() -> Self {
        OwnerId {
            id: "s3o".to_owned(),
            display_name: "s3o".to_owned(),
        }
    }
}

/// The refusal of an ACL this store cannot keep.
fn not_supported(what: &str) -> S3Error {
    s3_error!(
        AccessControlListNotSupported,
        "{what}: this gateway has one owner and keeps no grants, so only the private ACL (the \
         owner's FULL_CONTROL) can be set"
    )
}

impl GatewayS3 {
    /// The owner as S3 answers it.
    pub(super) fn s3_owner(&self) -> Owner {
        Owner {
            id: Some(self.owner.id.clone()),
            display_name: Some(self.owner.display_name.clone()),
        }
    }

    /// Names the owner on every listed object.
    pub(super) fn add_owner(&self, objects: &mut [Object]) {
        for o in objects {
            o.owner = Some(self.s3_owner());
        }
    }

    /// The one ACL there is: the owner's `FULL_CONTROL`.
    fn owner_grants(&self) -> Grants {
        vec![Grant {
            grantee: Some(Grantee {
                display_name: Some(self.owner.display_name.clone()),
                email_address: None,
                id: Some(self.owner.id.clone()),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
        }]
    }

    /// Whether `id="…"` / `uri="…"` grant lists name the owner only.
    fn grant_header_is_owner(&self, v: &str) -> bool {
        v.split(',').all(|g| {
            let g = g.trim();
            g.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("id") && v.trim().trim_matches('"') == self.owner.id
            })
        })
    }

    /// Checks that a PutBucketAcl/PutObjectAcl leaves the owner's `FULL_CONTROL` the only
    /// grant; `canned` is the `x-amz-acl` value if any.
    fn check_acl(
        &self,
        canned: Option<&str>,
        object: bool,
        policy: Option<&AccessControlPolicy>,
        full_control: Option<&str>,
        others: [Option<&String>; 4],
    ) -> S3Result<()> {
        if let Some(c) = canned {
            let ok = c == "private" || (object && c == "bucket-owner-full-control");
            if !ok {
                return Err(not_supported(&format!("the canned ACL {c:?}")));
            }
        }
        if others.iter().any(Option::is_some) {
            return Err(not_supported("a READ/WRITE/READ_ACP/WRITE_ACP grant"));
        }
        if let Some(v) = full_control
            && !self.grant_header_is_owner(v)
        {
            return Err(not_supported("a FULL_CONTROL grant to another grantee"));
        }
        if let Some(p) = policy {
            if let Some(o) = &p.owner
                && o.id.as_deref().is_some_and(|id| id != self.owner.id)
            {
                return Err(not_supported("a policy naming another owner"));
            }
            let grants = p.grants.as_deref().unwrap_or_default();
            let only_owner = !grants.is_empty()
                && grants.iter().all(|g| {
                    let full = g
                        .permission
                        .as_ref()
                        .is_some_and(|p| p.as_str() == Permission::FULL_CONTROL);
                    let owner = g.grantee.as_ref().is_some_and(|e| {
                        e.type_.as_str() == Type::CANONICAL_USER
                            && e.id.as_deref() == Some(self.owner.id.as_str())
                    });
                    full && owner
                });
            if !only_owner {
                return Err(not_supported(
                    "a policy granting other than the owner's FULL_CONTROL",
                ));
            }
        }
        Ok(())
    }

    /// The object must exist for its ACL to be read or set.
    async fn object_exists(&self, bucket: &str, key: &str) -> S3Result<()> {
        self.bucket(bucket).await?;
        match self.ledger.copies(&keys::ledger_key(bucket, key)).await {
            Ok(_) => Ok(()),
            Err(StoreError::ObjectNotFound { .. }) => {
                Err(s3_error!(NoSuchKey, "The specified key does not exist."))
            }
            Err(e) => Err(read_err(e)),
        }
    }

    pub(super) async fn do_get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(self.owner_grants()),
            owner: Some(self.s3_owner()),
        }))
    }

    pub(super) async fn do_get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.object_exists(&req.input.bucket, &req.input.key)
            .await?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(self.owner_grants()),
            owner: Some(self.s3_owner()),
            ..GetObjectAclOutput::default()
        }))
    }

    pub(super) async fn do_put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        self.check_acl(
            i.acl.as_ref().map(BucketCannedACL::as_str),
            false,
            i.access_control_policy.as_ref(),
            i.grant_full_control.as_deref(),
            [
                i.grant_read.as_ref(),
                i.grant_read_acp.as_ref(),
                i.grant_write.as_ref(),
                i.grant_write_acp.as_ref(),
            ],
        )?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn do_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let i = req.input;
        self.object_exists(&i.bucket, &i.key).await?;
        self.check_acl(
            i.acl.as_ref().map(ObjectCannedACL::as_str),
            true,
            i.access_control_policy.as_ref(),
            i.grant_full_control.as_deref(),
            [
                i.grant_read.as_ref(),
                i.grant_read_acp.as_ref(),
                i.grant_write.as_ref(),
                i.grant_write_acp.as_ref(),
            ],
        )?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    /// This gateway makes no torrents: the torrent of an object is a key that does not exist
    /// (the answer the suite accepts for a store without torrent support).
    pub(super) async fn do_get_object_torrent(
        &self,
        req: S3Request<GetObjectTorrentInput>,
    ) -> S3Result<S3Response<GetObjectTorrentOutput>> {
        self.object_exists(&req.input.bucket, &req.input.key)
            .await?;
        Err(s3_error!(
            NoSuchKey,
            "no torrent is kept for this object: this gateway does not create torrents"
        ))
    }
}
