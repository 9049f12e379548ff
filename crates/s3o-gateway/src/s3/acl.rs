//! Ownership and ACLs as a single-owner store can honestly answer them.
//!
//! The gateway has one owner (`[owner]` in the configuration): every configured credential
//! acts as it. A bucket may in addition carry one of S3's canned ACLs that grant a group
//! ([`Canned`]): `public-read` (everyone may list the bucket), `public-read-write` (everyone
//! may also write and delete objects in it) or `authenticated-read` (every signed-in user may
//! list it: here they all act as the owner anyway). It is set by CreateBucket's or
//! PutBucketAcl's `x-amz-acl` (or a policy naming exactly the same grants) and kept in the
//! bucket row's `extra` settings; GetBucketAcl answers its grants. Objects keep no ACL of
//! their own: an object is always private to the owner (`x-amz-acl` on PutObject/CopyObject
//! is not read, PutObjectAcl accepts only `private`/`bucket-owner-*`), so an unsigned GET of
//! an object is refused even in a public bucket, exactly as S3 refuses a private object there.
//!
//! Unsigned requests ([`Anonymous`]) are answered only where the bucket's ACL grants
//! everyone: listing and HeadBucket with READ; PutObject, POST Object and DeleteObject with
//! WRITE; GetObject/HeadObject of a missing key with READ (404, since the listing would show
//! it missing anyway). Everything else, and every bucket without a public ACL, answers 403
//! AccessDenied as before; a missing bucket answers 404 NoSuchBucket, as S3 does. Anything
//! granting a particular other user is refused with `AccessControlListNotSupported`, S3's
//! answer when ACLs are disabled, and changes nothing.

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

/// The field of the bucket row's `extra` settings holding its canned ACL (absent = private).
const BUCKET_ACL_FIELD: &str = "acl";

/// AWS's group of everyone, signed or not.
const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// AWS's group of every signed-in user.
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The bucket ACLs kept: the owner's FULL_CONTROL plus, for all but `Private`, group grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Canned {
    /// Only the owner.
    Private,
    /// Everyone may READ (list) the bucket.
    PublicRead,
    /// Everyone may READ and WRITE (put and delete objects in) the bucket.
    PublicReadWrite,
    /// Every signed-in user may READ the bucket.
    AuthenticatedRead,
}

impl Canned {
    const ALL: [Canned; 4] = [
        Canned::Private,
        Canned::PublicRead,
        Canned::PublicReadWrite,
        Canned::AuthenticatedRead,
    ];

    /// S3's name of the ACL.
    fn as_str(self) -> &'static str {
        match self {
            Canned::Private => "private",
            Canned::PublicRead => "public-read",
            Canned::PublicReadWrite => "public-read-write",
            Canned::AuthenticatedRead => "authenticated-read",
        }
    }

    /// The ACL named `s`, if it is one a bucket keeps.
    fn parse(s: &str) -> Option<Canned> {
        Canned::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The bucket's ACL as stored; absent or unreadable is private (never wider).
    fn of_bucket(b: &s3o_store::Bucket) -> Canned {
        b.settings
            .extra
            .get(BUCKET_ACL_FIELD)
            .and_then(|v| v.as_str())
            .and_then(Canned::parse)
            .unwrap_or(Canned::Private)
    }

    /// The group grants beyond the owner's, as (group URI, permission).
    fn group_grants(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Canned::Private => &[],
            Canned::PublicRead => &[(ALL_USERS, Permission::READ)],
            Canned::PublicReadWrite => &[
                (ALL_USERS, Permission::READ),
                (ALL_USERS, Permission::WRITE),
            ],
            Canned::AuthenticatedRead => &[(AUTHENTICATED_USERS, Permission::READ)],
        }
    }

    /// Whether everyone, unsigned requests included, may list the bucket.
    fn public_read(self) -> bool {
        matches!(self, Canned::PublicRead | Canned::PublicReadWrite)
    }

    /// Whether everyone may write and delete objects in the bucket.
    fn public_write(self) -> bool {
        self == Canned::PublicReadWrite
    }
}

/// The canned ACL a CreateBucket asks for (`x-amz-acl`; none is private), or the refusal of
/// one this gateway does not keep.
pub(super) fn create_bucket_acl(acl: Option<&BucketCannedACL>) -> S3Result<Canned> {
    match acl.map(BucketCannedACL::as_str) {
        None => Ok(Canned::Private),
        Some(c) => Canned::parse(c).ok_or_else(|| not_supported(&format!("the canned ACL {c:?}"))),
    }
}

/// The `extra` settings a new bucket starts with for ACL `c` (nothing for private).
pub(super) fn bucket_acl_extra(c: Canned) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    if c != Canned::Private {
        m.insert(BUCKET_ACL_FIELD.into(), c.as_str().into());
    }
    m
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

    /// The grants of ACL `c`: its group grants first, then the owner's `FULL_CONTROL`.
    fn grants(&self, c: Canned) -> Grants {
        let mut g: Grants = c
            .group_grants()
            .iter()
            .map(|(uri, perm)| Grant {
                grantee: Some(Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some((*uri).to_owned()),
                }),
                permission: Some(Permission::from_static(perm)),
            })
            .collect();
        g.extend(self.owner_grants());
        g
    }

    /// The owner's `FULL_CONTROL`, the whole ACL of every object.
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

    /// The ACL a PutBucketAcl/PutObjectAcl asks for (`canned` is its `x-amz-acl`), or the
    /// refusal of one this gateway cannot keep: an object keeps only the owner's
    /// `FULL_CONTROL`, a bucket a [`Canned`] ACL; grant headers may name the owner only.
    fn check_acl(
        &self,
        canned: Option<&str>,
        object: bool,
        policy: Option<&AccessControlPolicy>,
        full_control: Option<&str>,
        others: [Option<&String>; 4],
    ) -> S3Result<Canned> {
        let mut asked = Canned::Private;
        if let Some(c) = canned {
            asked = match (Canned::parse(c), object) {
                (Some(c), false) => c,
                (Some(Canned::Private), true) => Canned::Private,
                (None, true) if c.starts_with("bucket-owner-") => Canned::Private,
                _ => return Err(not_supported(&format!("the canned ACL {c:?}"))),
            };
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
            asked = self.policy_acl(p.grants.as_deref().unwrap_or_default(), object)?;
        }
        Ok(asked)
    }

    /// The ACL whose grants a policy lists exactly (in any order): the owner's
    /// `FULL_CONTROL` and, for a bucket, the group grants of one [`Canned`] ACL.
    fn policy_acl(&self, grants: &[Grant], object: bool) -> S3Result<Canned> {
        let mut owner = false;
        let mut groups = BTreeSet::new();
        for g in grants {
            let perm = g.permission.as_ref().map(|p| p.as_str()).unwrap_or("");
            let Some(e) = &g.grantee else {
                return Err(not_supported("a grant without a grantee"));
            };
            if e.type_.as_str() == Type::CANONICAL_USER
                && e.id.as_deref() == Some(self.owner.id.as_str())
                && perm == Permission::FULL_CONTROL
            {
                owner = true;
            } else if e.type_.as_str() == Type::GROUP
                && let Some(uri) = e.uri.as_deref()
            {
                groups.insert((uri.to_owned(), perm.to_owned()));
            } else {
                return Err(not_supported(
                    "a policy granting other than the owner's FULL_CONTROL",
                ));
            }
        }
        let candidates: &[Canned] = if object {
            &[Canned::Private]
        } else {
            &Canned::ALL
        };
        candidates
            .iter()
            .copied()
            .find(|c| {
                let want: BTreeSet<_> = c
                    .group_grants()
                    .iter()
                    .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
                    .collect();
                owner && want == groups
            })
            .ok_or_else(|| {
                not_supported(
                    "a policy whose grants are not the owner's FULL_CONTROL plus those of a \
                     canned bucket ACL",
                )
            })
    }

    /// The bucket, or `NoSuchBucket`.
    async fn bucket_row(&self, name: &str) -> S3Result<s3o_store::Bucket> {
        self.ledger.bucket(name).await.map_err(|e| match e {
            StoreError::BucketNotFound { .. } | StoreError::InvalidInput { .. } => {
                s3_error!(NoSuchBucket, "bucket {name} does not exist")
            }
            e => read_err(e),
        })
    }

    /// The object (the version named, or the current one) must exist for its ACL to be read
    /// or set: every version's ACL is the owner's FULL_CONTROL, so there is nothing else to
    /// look up. No such version ⇒ NoSuchVersion; a delete marker answers as on GET.
    async fn object_exists(&self, bucket: &str, key: &str, version: Option<&str>) -> S3Result<()> {
        self.bucket(bucket).await?;
        if version.is_some() {
            return self.lookup_at(bucket, key, version).await.map(drop);
        }
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
        let b = self.bucket_row(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(self.grants(Canned::of_bucket(&b))),
            owner: Some(self.s3_owner()),
        }))
    }

    pub(super) async fn do_get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let i = &req.input;
        self.object_exists(&i.bucket, &i.key, i.version_id.as_deref())
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
        let acl = self.check_acl(
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
        let value = (acl != Canned::Private).then(|| serde_json::Value::from(acl.as_str()));
        self.ledger
            .set_bucket_extra(&i.bucket, BUCKET_ACL_FIELD, value.as_ref())
            .await
            .map_err(write_err)?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn do_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let i = req.input;
        self.object_exists(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
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
        self.object_exists(&req.input.bucket, &req.input.key, None)
            .await?;
        Err(s3_error!(
            NoSuchKey,
            "no torrent is kept for this object: this gateway does not create torrents"
        ))
    }
}

/// The access check s3s runs before every request when credentials are configured. A signed
/// request (its signature already verified by s3s) acts as the owner; an unsigned one is
/// answered only where its bucket's canned ACL grants everyone (see the module docs), so a
/// bucket without one answers anonymous requests 403 exactly as before.
pub(crate) struct Anonymous(GatewayS3);

impl Anonymous {
    /// The check for the gateway `s3`.
    pub(crate) fn new(s3: GatewayS3) -> Self {
        Anonymous(s3)
    }
}

/// What an unsigned request needs the bucket's ACL to grant everyone.
enum Needs {
    /// READ: list the bucket, HeadBucket.
    Read,
    /// WRITE: put or delete an object.
    Write,
    /// READ of an object: never granted (objects are private), so only a missing key is
    /// answered (404) when the bucket may be listed.
    ObjectRead,
}

#[async_trait::async_trait]
impl s3s::access::S3Access for Anonymous {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let denied = || s3_error!(AccessDenied, "Access Denied");
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Bucket { bucket } => (bucket, None),
            s3s::path::S3Path::Object { bucket, key } => (bucket, Some(key)),
            s3s::path::S3Path::Root => return Err(denied()),
        };
        let needs = match (cx.s3_op().name(), key) {
            ("ListObjects" | "ListObjectsV2" | "HeadBucket", None) => Needs::Read,
            ("PostObject", None) | ("PutObject" | "DeleteObject", Some(_)) => Needs::Write,
            ("GetObject" | "HeadObject", Some(_)) => Needs::ObjectRead,
            _ => return Err(denied()),
        };
        let acl = Canned::of_bucket(&self.0.bucket_row(bucket).await?);
        match needs {
            Needs::Read if acl.public_read() => Ok(()),
            Needs::Write if acl.public_write() => Ok(()),
            Needs::ObjectRead if acl.public_read() => {
                let key = keys::ledger_key(bucket, key.map_or("", |k| &**k));
                match self.0.ledger.copies(&key).await {
                    Err(StoreError::ObjectNotFound { .. }) => {
                        Err(s3_error!(NoSuchKey, "The specified key does not exist."))
                    }
                    Ok(_) => Err(denied()),
                    Err(e) => Err(read_err(e)),
                }
            }
            _ => Err(denied()),
        }
    }
}
