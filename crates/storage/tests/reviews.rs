//! Access reviews on both stores: a campaign lists every enabled staff member and every owner
//! and admin of a live workspace (not agents, not removed teammates, not deleted workspaces),
//! each against its role's baseline; certify and revoke apply, self-review and second
//! decisions are refused; with a moved clock, the deadline revokes what nobody reviewed (staff
//! disabled with their sessions, admins demoted to agent with an `access_review.revoked`
//! entry), closes the campaign, and the schedule starts the next one only after `every_ms`;
//! the report gives completion and drift.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use interlock_crypto::totp::TotpSecret;
use interlock_domain::{
    ActivityType, Actor, BuiltinRole, Email, NewActivity, PersonName, Region, StaffId, StaffRole,
    Target, TeammateId, TeammateRole, WorkspaceId,
};
use interlock_storage::cell::WorkspaceDeletionReason;
use interlock_storage::{
    ActivityFilter, Backend, Cell, CellConfig, ReviewDecision, ReviewItem, ReviewItemKind,
    ReviewSchedule, ReviewVerdict, Reviewer, StaffPrincipal, StoreError, now_ms,
};

const DAY: i64 = 86_400_000;

async fn open(backend: Backend, dir: &std::path::Path) -> Cell {
    Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap()
}

backend_tests!(
    a_campaign_lists_holders_and_reviewers_decide,
    the_deadline_revokes_what_nobody_reviewed,
);

async fn staff(cell: &Cell, email: &str, role: StaffRole) -> (StaffId, TotpSecret) {
    let (m, secret) = cell
        .add_staff(&Email::parse(email).unwrap(), role)
        .await
        .unwrap();
    (m.id, secret)
}

fn reviewer(id: &StaffId, role: StaffRole) -> StaffPrincipal {
    StaffPrincipal {
        staff_id: id.clone(),
        role,
        device_serial: "test-device".into(),
    }
}

/// A teammate of the workspace acting (`security.manage` is checked by the HTTP layer).
fn teammate_actor(tm: &TeammateId) -> Actor {
    Actor::new(
        interlock_domain::ActorType::Teammate,
        Some(tm.to_string()),
        None,
        None,
    )
}

/// The workspace's first API token acting.
fn token_actor() -> Actor {
    Actor::new(interlock_domain::ActorType::ApiToken, None, None, None)
}

async fn entries(
    cell: &Cell,
    ws: &WorkspaceId,
    kind: ActivityType,
) -> Vec<interlock_domain::ActivityEntry> {
    cell.list_activity(
        ws,
        &ActivityFilter {
            types: vec![kind],
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .items
    .into_iter()
    .map(|e| e.entry)
    .collect()
}

async fn teammate(cell: &Cell, ws: &WorkspaceId, email: &str, role: &str) -> TeammateId {
    let act = NewActivity::new(
        ActivityType::TeammateInvited,
        &Actor::system(),
        Target::kind("teammate"),
    );
    let (tm, _, _) = cell
        .create_teammate(
            ws,
            &Email::parse(email).unwrap(),
            &PersonName::parse("Pat").unwrap(),
            &TeammateRole::parse(role).unwrap(),
            &act,
        )
        .await
        .unwrap();
    tm.id
}

async fn set_role(cell: &Cell, ws: &WorkspaceId, tm: &TeammateId, role: &str) {
    let act = NewActivity::new(
        ActivityType::TeammateRoleChanged,
        &Actor::system(),
        Target::new("teammate", tm.as_str()),
    );
    cell.set_teammate_role(ws, tm, &TeammateRole::parse(role).unwrap(), None, &act)
        .await
        .unwrap();
}

async fn role_of(cell: &Cell, ws: &WorkspaceId, tm: &TeammateId) -> String {
    cell.get_teammate(ws, tm).await.unwrap().role.as_string()
}

fn item_of<'a>(items: &'a [ReviewItem], holder: &str) -> &'a ReviewItem {
    items
        .iter()
        .find(|i| i.holder_id == holder)
        .unwrap_or_else(|| panic!("no item for {holder}"))
}

fn holders(items: &[ReviewItem]) -> BTreeSet<String> {
    items.iter().map(|i| i.holder_id.clone()).collect()
}

async fn revoked_entries(cell: &Cell, ws: &WorkspaceId) -> Vec<interlock_domain::ActivityEntry> {
    entries(cell, ws, ActivityType::AccessReviewRevoked).await
}

async fn a_campaign_lists_holders_and_reviewers_decide(backend: Backend, dir: &std::path::Path) {
    let cell = open(backend, dir).await;
    let (ann, _) = staff(&cell, "ann@operator.example", StaffRole::Approver).await;
    let (bob, _) = staff(&cell, "bob@operator.example", StaffRole::Approver).await;
    let (sue, _) = staff(&cell, "sue@operator.example", StaffRole::Support).await;
    let (gone, _) = staff(&cell, "gone@operator.example", StaffRole::Engineer).await;
    cell.disable_staff(&gone, now_ms()).await.unwrap();

    let ws = cell.create_workspace("Acme").await.unwrap().0.id;
    let owner = teammate(&cell, &ws, "owner@acme.example", "owner").await;
    let admin = teammate(&cell, &ws, "admin@acme.example", "admin").await;
    let agent = teammate(&cell, &ws, "agent@acme.example", "agent").await;
    let viewer = teammate(&cell, &ws, "viewer@acme.example", "viewer").await;
    let removed = teammate(&cell, &ws, "removed@acme.example", "admin").await;
    cell.remove_teammate(
        &ws,
        &removed,
        &NewActivity::new(
            ActivityType::TeammateRemoved,
            &Actor::system(),
            Target::new("teammate", removed.as_str()),
        ),
    )
    .await
    .unwrap();
    // A workspace whose only owner cannot lose the role.
    let solo_ws = cell.create_workspace("Solo").await.unwrap().0.id;
    let solo = teammate(&cell, &solo_ws, "solo@solo.example", "owner").await;
    // A deleted workspace's admins are not reviewed.
    let dead_ws = cell.create_workspace("Dead").await.unwrap().0.id;
    let dead = teammate(&cell, &dead_ws, "dead@dead.example", "admin").await;
    cell.delete_workspace(
        &dead_ws,
        WorkspaceDeletionReason::Operator,
        &Actor::system(),
    )
    .await
    .unwrap();

    let now = now_ms();
    let c = cell.start_access_review(now, 14 * DAY).await.unwrap();
    assert_eq!(c.started_at, now);
    assert_eq!(c.deadline_at, now + 14 * DAY);
    assert!(c.is_open());
    // One campaign at a time.
    assert!(matches!(
        cell.start_access_review(now, 14 * DAY).await,
        Err(StoreError::Conflict("review_open"))
    ));

    let items = cell.access_review_items(&c.id).await.unwrap();
    let expected: BTreeSet<String> = [
        ann.to_string(),
        bob.to_string(),
        sue.to_string(),
        owner.to_string(),
        admin.to_string(),
        solo.to_string(),
    ]
    .into_iter()
    .collect();
    assert_eq!(holders(&items), expected);
    for absent in [
        gone.to_string(),
        agent.to_string(),
        viewer.to_string(),
        removed.to_string(),
        dead.to_string(),
    ] {
        assert!(!holders(&items).contains(&absent), "{absent} was listed");
    }
    // Each against the baseline of its role.
    let a = item_of(&items, ann.as_str());
    assert_eq!(a.kind, ReviewItemKind::StaffRole);
    assert_eq!(a.role, "approver");
    assert_eq!(a.workspace_id, None);
    assert_eq!(a.permissions, StaffRole::Approver.capabilities().to_vec());
    assert_eq!(a.baseline, a.permissions);
    let s = item_of(&items, sue.as_str());
    assert_eq!(s.permissions, vec!["staff.request_access".to_owned()]);
    let ad = item_of(&items, admin.as_str());
    assert_eq!(ad.kind, ReviewItemKind::TeammateRole);
    assert_eq!(ad.role, "admin");
    assert_eq!(ad.workspace_id.as_ref(), Some(&ws));
    let admin_perms: Vec<String> = BuiltinRole::Admin
        .permissions()
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    assert_eq!(ad.permissions, admin_perms);
    assert_eq!(ad.baseline, admin_perms);
    assert!(!ad.permissions.contains(&"security.manage".to_owned()));
    let ow = item_of(&items, owner.as_str());
    assert!(ow.permissions.contains(&"security.manage".to_owned()));
    assert!(items.iter().all(|i| i.decision.is_none()));

    // Each workspace with items was told: the start is in its log (and queued as a webhook).
    let started = entries(&cell, &ws, ActivityType::AccessReviewStarted).await;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].actor.kind.as_str(), "system");
    assert_eq!(started[0].metadata["campaign_id"], c.id.as_str());
    assert_eq!(started[0].metadata["items"], 2);
    assert_eq!(started[0].metadata["deadline_at_ms"], c.deadline_at);
    assert_eq!(
        entries(&cell, &solo_ws, ActivityType::AccessReviewStarted)
            .await
            .len(),
        1
    );

    let (ann_p, bob_p) = (
        reviewer(&ann, StaffRole::Approver),
        reviewer(&bob, StaffRole::Approver),
    );
    let (ann_r, bob_r) = (Reviewer::Staff(&ann_p), Reviewer::Staff(&bob_p));
    let (owner_a, token_a) = (teammate_actor(&owner), token_actor());
    let by_owner = Reviewer::Workspace {
        workspace: &ws,
        actor: &owner_a,
    };
    let by_token = Reviewer::Workspace {
        workspace: &ws,
        actor: &token_a,
    };
    let solo_token = Reviewer::Workspace {
        workspace: &solo_ws,
        actor: &token_a,
    };
    let at = now + DAY;
    // Certify.
    let d = cell
        .decide_review_item(
            &c.id,
            &item_of(&items, bob.as_str()).id,
            ReviewVerdict::Certify,
            ann_r,
            at,
        )
        .await
        .unwrap();
    assert_eq!(d.decision, Some(ReviewDecision::Certified));
    assert_eq!(d.decided_by.as_deref(), Some(ann.as_str()));
    assert_eq!(d.decided_at, Some(at));
    // Decided once.
    assert!(matches!(
        cell.decide_review_item(&c.id, &d.id, ReviewVerdict::Revoke, ann_r, at)
            .await,
        Err(StoreError::Conflict("item_decided"))
    ));
    // Nobody reviews themselves.
    assert!(matches!(
        cell.decide_review_item(&c.id, &a.id, ReviewVerdict::Certify, ann_r, at)
            .await,
        Err(StoreError::Conflict("self_review"))
    ));
    // Only approvers review.
    let sue_p = reviewer(&sue, StaffRole::Support);
    assert!(matches!(
        cell.decide_review_item(
            &c.id,
            &a.id,
            ReviewVerdict::Certify,
            Reviewer::Staff(&sue_p),
            at
        )
        .await,
        Err(StoreError::Conflict("not_an_approver"))
    ));
    // Operator staff do not decide a customer's roles; a workspace decides nothing but its
    // own teammates.
    assert!(matches!(
        cell.decide_review_item(&c.id, &ad.id, ReviewVerdict::Revoke, bob_r, at)
            .await,
        Err(StoreError::Conflict("reviewed_by_workspace"))
    ));
    for foreign in [&s.id, &item_of(&items, solo.as_str()).id] {
        assert!(matches!(
            cell.decide_review_item(&c.id, foreign, ReviewVerdict::Revoke, by_owner, at)
                .await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(matches!(
        cell.decide_review_item(&c.id, &ow.id, ReviewVerdict::Certify, by_owner, at)
            .await,
        Err(StoreError::Conflict("self_review"))
    ));
    // Revoking a staff role disables the member at once.
    let d = cell
        .decide_review_item(&c.id, &s.id, ReviewVerdict::Revoke, bob_r, at)
        .await
        .unwrap();
    assert_eq!(d.decision, Some(ReviewDecision::Revoked));
    assert_eq!(cell.get_staff(&sue).await.unwrap().disabled_at, Some(at));
    // The owner revoking the admin makes them an agent, in the workspace's log.
    let d = cell
        .decide_review_item(&c.id, &ad.id, ReviewVerdict::Revoke, by_owner, at)
        .await
        .unwrap();
    assert_eq!(d.decision, Some(ReviewDecision::Revoked));
    assert_eq!(d.decided_by.as_deref(), Some(owner.as_str()));
    assert_eq!(role_of(&cell, &ws, &admin).await, "agent");
    let log = revoked_entries(&cell, &ws).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].actor.id.as_deref(), Some(owner.as_str()));
    assert_eq!(log[0].target.id.as_deref(), Some(admin.as_str()));
    assert_eq!(log[0].metadata["reason"], "revoked");
    assert_eq!(log[0].metadata["campaign_id"], c.id.as_str());
    assert_eq!(log[0].metadata["item_id"], ad.id.as_str());
    assert_eq!(log[0].metadata["before"], "admin");
    assert_eq!(log[0].metadata["after"], "agent");
    // The last owner keeps the role; the item says why.
    let so = item_of(&items, solo.as_str());
    let d = cell
        .decide_review_item(&c.id, &so.id, ReviewVerdict::Revoke, solo_token, at)
        .await
        .unwrap();
    assert_eq!(d.decision, Some(ReviewDecision::RevokeBlockedLastOwner));
    assert_eq!(d.decided_by.as_deref(), Some("api_token"));
    assert_eq!(role_of(&cell, &solo_ws, &solo).await, "owner");
    assert!(revoked_entries(&cell, &solo_ws).await.is_empty());

    // Completion: 4 of 6 decided.
    let r = cell.access_review_report(None).await.unwrap();
    assert_eq!(r.campaign.id, c.id);
    assert_eq!(
        (
            r.totals.items,
            r.totals.decided,
            r.totals.certified,
            r.totals.revoked,
            r.totals.revoke_blocked_last_owner,
            r.totals.pending
        ),
        (6, 4, 1, 2, 1, 2)
    );
    assert!((r.completion - 4.0 / 6.0).abs() < 1e-9);
    // The first campaign has nothing to drift from, and nobody holds beyond their baseline.
    assert_eq!(r.drift.previous_campaign_id, None);
    assert!(r.drift.added.is_empty() && r.drift.removed.is_empty());
    assert!(r.drift.beyond_baseline.is_empty());
    // The workspace sees its own two items, and no other.
    let mine = cell.workspace_review_items(&c.id, &ws).await.unwrap();
    assert_eq!(
        holders(&mine),
        [owner.to_string(), admin.to_string()].into_iter().collect()
    );

    // At the deadline, reviewers are too late.
    assert!(matches!(
        cell.decide_review_item(
            &c.id,
            &ow.id,
            ReviewVerdict::Certify,
            by_token,
            c.deadline_at
        )
        .await,
        Err(StoreError::Conflict("review_closed"))
    ));
    // Deciding the rest before it closes the campaign; a workspace's certification is logged.
    cell.decide_review_item(&c.id, &ow.id, ReviewVerdict::Certify, by_token, at)
        .await
        .unwrap();
    let certified = entries(&cell, &ws, ActivityType::AccessReviewCertified).await;
    assert_eq!(certified.len(), 1);
    assert_eq!(certified[0].target.id.as_deref(), Some(owner.as_str()));
    assert_eq!(certified[0].metadata["role"], "owner");
    assert_eq!(certified[0].metadata["item_id"], ow.id.as_str());
    cell.decide_review_item(&c.id, &a.id, ReviewVerdict::Certify, bob_r, at)
        .await
        .unwrap();
    let closed = cell.access_review_campaign(Some(&c.id)).await.unwrap();
    assert_eq!(closed.closed_at, Some(at));
    assert!(matches!(
        cell.decide_review_item(&c.id, &ow.id, ReviewVerdict::Revoke, by_token, at)
            .await,
        Err(StoreError::Conflict("review_closed"))
    ));
    let r = cell.access_review_report(Some(&c.id)).await.unwrap();
    assert_eq!(r.totals.pending, 0);
    assert!((r.completion - 1.0).abs() < 1e-9);

    // Permissions beyond the baseline are reported (a holder whose recorded access exceeds
    // what the role allows, made by hand here).
    let c2 = cell.start_access_review(at, 14 * DAY).await.unwrap();
    sqlx::query(
        "UPDATE access_review_items SET permissions = $1 WHERE campaign_id = $2 AND holder_id = $3",
    )
    .bind("staff.request_access,staff.approve_access,staff.review_access,staff.manage_staff")
    .bind(c2.id.as_str())
    .bind(bob.as_str())
    .execute(cell.pool())
    .await
    .unwrap();
    let r = cell.access_review_report(Some(&c2.id)).await.unwrap();
    assert_eq!(r.drift.previous_campaign_id.as_ref(), Some(&c.id));
    assert_eq!(r.drift.beyond_baseline.len(), 1, "{:?}", r.drift);
    assert_eq!(r.drift.beyond_baseline[0].holder_id, bob.as_str());
    assert_eq!(
        r.drift.beyond_baseline[0].extra,
        vec!["staff.manage_staff".to_owned()]
    );
    // … and, against the previous campaign, as a change.
    assert_eq!(r.drift.changed.len(), 1);
    assert_eq!(r.drift.changed[0].holder_id, bob.as_str());
    assert_eq!(
        r.drift.changed[0].gained,
        vec!["staff.manage_staff".to_owned()]
    );
    // Sue (disabled) and the demoted admin left; nobody came.
    let removed_now: BTreeSet<String> = r
        .drift
        .removed
        .iter()
        .map(|h| h.holder_id.clone())
        .collect();
    assert_eq!(
        removed_now,
        [sue.to_string(), admin.to_string()].into_iter().collect()
    );
    assert!(r.drift.added.is_empty());
    cell.close().await;
}

async fn the_deadline_revokes_what_nobody_reviewed(backend: Backend, dir: &std::path::Path) {
    let cell = open(backend, dir).await;
    let (ann, _) = staff(&cell, "ann@operator.example", StaffRole::Approver).await;
    let (bob, bob_totp) = staff(&cell, "bob@operator.example", StaffRole::Approver).await;
    let ws = cell.create_workspace("Acme").await.unwrap().0.id;
    let owner = teammate(&cell, &ws, "owner@acme.example", "owner").await;
    let admin = teammate(&cell, &ws, "admin@acme.example", "admin").await;
    let agent = teammate(&cell, &ws, "agent@acme.example", "agent").await;
    let schedule = ReviewSchedule::from_days(91, 14);
    // No campaign yet: the first one is due a full period after the first approver was added.
    let early = cell
        .access_review_sweep(now_ms(), schedule.every_ms, schedule.window_ms)
        .await
        .unwrap();
    assert_eq!(early.campaign_started, None);
    let t0 = now_ms() + schedule.every_ms;
    let s = cell
        .access_review_sweep(t0, schedule.every_ms, schedule.window_ms)
        .await
        .unwrap();
    let c1 = s.campaign_started.clone().unwrap();
    assert!(s.campaigns_closed.is_empty() && s.revoked_unreviewed == 0);
    let c1 = cell
        .access_review_campaign(Some(
            &interlock_domain::ReviewCampaignId::parse(&c1).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(c1.deadline_at, t0 + 14 * DAY);
    let items = cell.access_review_items(&c1.id).await.unwrap();
    assert_eq!(
        holders(&items),
        [
            ann.to_string(),
            bob.to_string(),
            owner.to_string(),
            admin.to_string()
        ]
        .into_iter()
        .collect()
    );
    // Idempotent, and nothing happens before the deadline.
    assert!(
        cell.access_review_sweep(t0, schedule.every_ms, schedule.window_ms)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cell.access_review_sweep(t0 + 13 * DAY, schedule.every_ms, schedule.window_ms)
            .await
            .unwrap()
            .is_empty()
    );

    // Bob certifies Ann, the workspace certifies its owner; Bob's own item and the admin stay
    // unreviewed.
    let at = t0 + DAY;
    let bob_p = reviewer(&bob, StaffRole::Approver);
    cell.decide_review_item(
        &c1.id,
        &item_of(&items, ann.as_str()).id,
        ReviewVerdict::Certify,
        Reviewer::Staff(&bob_p),
        at,
    )
    .await
    .unwrap();
    let token_a = token_actor();
    cell.decide_review_item(
        &c1.id,
        &item_of(&items, owner.as_str()).id,
        ReviewVerdict::Certify,
        Reviewer::Workspace {
            workspace: &ws,
            actor: &token_a,
        },
        at,
    )
    .await
    .unwrap();
    // Bob is signed in when the deadline comes.
    let code = bob_totp.code_at(u64::try_from(at / 1000).unwrap());
    let session = cell
        .staff_sign_in(&bob, &code, "bob-laptop", at)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cell.staff_session(session.expose(), "bob-laptop", at)
            .await
            .unwrap()
            .is_some()
    );

    // The deadline (the clock moved 14 days on).
    let deadline = c1.deadline_at;
    let s = cell
        .access_review_sweep(deadline, schedule.every_ms, schedule.window_ms)
        .await
        .unwrap();
    assert_eq!(s.revoked_unreviewed, 2, "{s:?}");
    assert_eq!(s.campaigns_closed, vec![c1.id.to_string()]);
    // Not a quarter since the last campaign began: no new one.
    assert_eq!(s.campaign_started, None);
    // Bob is disabled and signed out; the admin is an agent, logged as unreviewed by system.
    assert_eq!(
        cell.get_staff(&bob).await.unwrap().disabled_at,
        Some(deadline)
    );
    assert!(
        cell.staff_session(session.expose(), "bob-laptop", deadline)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(cell.get_staff(&ann).await.unwrap().disabled_at, None);
    assert_eq!(role_of(&cell, &ws, &admin).await, "agent");
    assert_eq!(role_of(&cell, &ws, &owner).await, "owner");
    let log = revoked_entries(&cell, &ws).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, "access_review.revoked");
    assert_eq!(log[0].actor.kind.as_str(), "system");
    assert_eq!(log[0].target.id.as_deref(), Some(admin.as_str()));
    assert_eq!(log[0].metadata["reason"], "unreviewed");
    assert_eq!(log[0].metadata["campaign_id"], c1.id.as_str());
    let items = cell.access_review_items(&c1.id).await.unwrap();
    for holder in [bob.as_str(), admin.as_str()] {
        let i = item_of(&items, holder);
        assert_eq!(i.decision, Some(ReviewDecision::RevokedUnreviewed));
        assert_eq!(i.decided_by.as_deref(), Some("system"));
        assert_eq!(i.decided_at, Some(deadline));
    }
    let r = cell.access_review_report(Some(&c1.id)).await.unwrap();
    assert_eq!(r.campaign.closed_at, Some(deadline));
    assert_eq!(
        (
            r.totals.items,
            r.totals.certified,
            r.totals.revoked_unreviewed,
            r.totals.pending
        ),
        (4, 2, 2, 0)
    );
    assert!((r.completion - 1.0).abs() < 1e-9);

    // Idempotent; and no new campaign until 91 days after the last one began.
    assert!(
        cell.access_review_sweep(deadline, schedule.every_ms, schedule.window_ms)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cell.access_review_sweep(t0 + 91 * DAY - 1, schedule.every_ms, schedule.window_ms)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(cell.access_review_report(None).await.unwrap().campaign.id == c1.id);

    // Meanwhile the agent is made an admin; the next campaign (from the lifecycle sweep, on
    // its schedule) shows them as added.
    set_role(&cell, &ws, &agent, "admin").await;
    let life = cell
        .lifecycle_sweep_with(t0 + 91 * DAY, 100, schedule)
        .await
        .unwrap();
    let c2 = life.access_review.campaign_started.clone().unwrap();
    assert_ne!(c2, c1.id.to_string());
    let r = cell.access_review_report(None).await.unwrap();
    assert_eq!(r.campaign.id.as_str(), c2);
    assert_eq!(r.campaign.deadline_at, t0 + 105 * DAY);
    assert_eq!(r.drift.previous_campaign_id.as_ref(), Some(&c1.id));
    let added: Vec<_> = r.drift.added.iter().map(|h| h.holder_id.as_str()).collect();
    assert_eq!(added, vec![agent.as_str()]);
    assert_eq!(r.drift.added[0].role, "admin");
    assert_eq!(r.drift.added[0].workspace_id.as_deref(), Some(ws.as_str()));
    let removed: BTreeSet<&str> = r
        .drift
        .removed
        .iter()
        .map(|h| h.holder_id.as_str())
        .collect();
    assert_eq!(
        removed,
        [bob.as_str(), admin.as_str()].into_iter().collect()
    );
    assert!(r.drift.changed.is_empty());
    assert!(r.drift.beyond_baseline.is_empty());
    assert_eq!((r.totals.items, r.totals.pending), (3, 3));
    assert_eq!(r.completion, 0.0);
    // The same moment again: nothing more.
    assert!(
        cell.lifecycle_sweep_with(t0 + 91 * DAY, 100, schedule)
            .await
            .unwrap()
            .access_review
            .is_empty()
    );
    cell.close().await;
}
