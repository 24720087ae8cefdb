//! Authorization at the edge: every workspace endpoint declares the permission it needs as the
//! type parameter of [`Allowed`], and the extractor asks the one decision point
//! ([`interlock_domain::authorize`]) before the handler runs. No handler checks permissions by
//! hand. The same permission is published per operation as `x-permission` in the OpenAPI
//! document; the authorization matrix test checks the two agree.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use interlock_domain::{ActivityType, Decision, Permission, Target, authorize};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::WorkspaceAuth;

/// A permission as a type, so a handler's signature states what it needs.
pub trait Needs {
    const PERMISSION: Permission;
}

/// Marker types, one per permission of the catalogue.
pub mod perm {
    use super::Needs;
    use interlock_domain::Permission;

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {
            $(
                #[derive(Debug, Clone, Copy)]
                pub struct $name;
                impl Needs for $name {
                    const PERMISSION: Permission = Permission::$name;
                }
            )*
        };
    }

    markers!(
        ConversationsRead,
        ConversationsReply,
        ConversationsAssign,
        ConversationsDelete,
        ContactsRead,
        ContactsEdit,
        ContactsDelete,
        DataExport,
        DataBulkDelete,
        TeammatesManage,
        RolesManage,
        SecurityManage,
        ActivityLogRead,
        DataRequestsHandle,
        MessengerManage,
        ApiTokensManage,
        StaffAccessManage,
    );
}

/// A workspace request whose principal holds `P`'s permission; `403 permission_denied`
/// otherwise. Dereferences to the [`WorkspaceAuth`].
#[derive(Debug)]
pub struct Allowed<P> {
    auth: WorkspaceAuth,
    _needs: PhantomData<P>,
}

impl<P> Deref for Allowed<P> {
    type Target = WorkspaceAuth;

    fn deref(&self) -> &WorkspaceAuth {
        &self.auth
    }
}

impl<P: Needs + Send + Sync> FromRequestParts<Arc<AppState>> for Allowed<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let auth = WorkspaceAuth::from_request_parts(parts, state).await?;
        match authorize(auth.permissions, P::PERMISSION) {
            Decision::Allow => Ok(Allowed {
                auth,
                _needs: PhantomData,
            }),
            Decision::Deny(missing) => {
                metrics::counter!("interlock_authz_denied_total", "permission" => missing.as_str())
                    .increment(1);
                // Refused attempts to change or delete something go into the activity log.
                let safe = matches!(
                    parts.method,
                    axum::http::Method::GET
                        | axum::http::Method::HEAD
                        | axum::http::Method::OPTIONS
                );
                if !safe {
                    let route = parts
                        .extensions
                        .get::<MatchedPath>()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default();
                    let act = auth
                        .activity(ActivityType::AccessDenied, Target::kind("endpoint"))
                        .with("permission", missing.as_str())
                        .with("method", parts.method.as_str())
                        .with("route", route);
                    auth.cell.record_activity(&auth.workspace, &act).await?;
                }
                Err(ApiError::PermissionDenied {
                    permission: missing,
                })
            }
        }
    }
}
