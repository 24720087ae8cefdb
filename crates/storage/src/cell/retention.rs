//! Enforced retention: visitors not seen for nine months are deleted with everything that
//! belongs to them (their keys destroyed), removed teammates' records 30 days after removal,
//! and rows that expire on their own (sessions, invitations, ceremonies, expired API tokens,
//! stale sign-in throttles) once they have expired. Planning (a dry run) and sweeping take the
//! time as an argument — the caller's clock — so tests and `--as-of` can move it.
//!
//! Invariants:
//! - Visitors expire set-based, per workspace, in batches of at most [`VISITOR_BATCH_MAX`]:
//!   one transaction per batch ([`Cell::expire_visitor_batch`]) deletes, for exactly the ids
//!   of the batch, subject keys first (crypto-shredding), messenger rows, attachments, parts,
//!   conversations, events and the contacts, with one `data.bulk_deleted` entry by `system`.
//!   Every statement re-checks "still a visitor last seen before the horizon", so a visitor
//!   seen meanwhile is kept with all its rows.
//! - Counts are exact: every counted statement must change exactly the number of rows counted
//!   before the transaction (`Stmt::expect`), or the transaction rolls back and the batch is
//!   counted again. A report never claims a deletion that did not commit.
//! - A sweep killed half-way has committed whole batches only; running it again finishes the
//!   job (it is idempotent).
//! - Candidates are found through indexes (`contacts_last_seen (role, last_seen_at)`,
//!   `teammates_removed`, and the expiry indexes of migration 11), so a sweep that finds
//!   nothing reads index pages only (teammate sessions, a few per teammate, are read with
//!   their workspace's lifetimes).
//! - Each sweep records per workspace what it deleted, counted per data element, as one
//!   `data.bulk_deleted` entry by `system` (`reason = "retention"`).
//! - SQL texts are static: a batch's ids are bound to a fixed list of `$n` placeholders
//!   (`$3` … `$1002`; a shorter batch repeats its last id).

use std::collections::BTreeMap;

use interlock_domain::{
    ActivityType, Actor, ContactId, ConversationId, NewActivity, RetentionSettings,
    SecuritySettings, SubjectKeyId, Target, TeammateId, WorkspaceId,
};

use super::{Cell, col, parse_id};
use crate::StoreError;
use crate::db::{Arg, Stmt};

/// Visitors expire this long after they were last seen: nine months (274 days, from the data
/// map).
pub const VISITOR_MAX_AGE_MS: i64 = crate::datamap::VISITOR_INACTIVITY_DAYS as i64 * 86_400_000;
/// Removed teammates' records are deleted this long after removal (from the data map).
pub const REMOVED_TEAMMATE_MAX_AGE_MS: i64 =
    crate::datamap::REMOVED_TEAMMATE_DAYS as i64 * 86_400_000;
/// A sign-in throttle row is deleted once this long has passed since both its last failure
/// and the end of its lock (from the data map: 24 hours).
pub const THROTTLE_QUIET_MS: i64 = crate::datamap::LOGIN_THROTTLE_QUIET_SECONDS as i64 * 1000;
/// An expired API token is kept (listed as expired) this long after its expiry, then deleted
/// (from the data map: 30 days).
pub const EXPIRED_TOKEN_KEEP_MS: i64 = crate::datamap::EXPIRED_API_TOKEN_DAYS as i64 * DAY_MS;
/// Most visitors one expiry transaction deletes (the length of the bound id list).
pub const VISITOR_BATCH_MAX: usize = 1000;

const DAY_MS: i64 = 86_400_000;

/// What a sweep would delete (or deleted), per workspace and data element.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub as_of_ms: i64,
    pub workspaces: BTreeMap<String, BTreeMap<&'static str, i64>>,
}

impl RetentionReport {
    /// Records that go (or went), all elements of all workspaces.
    pub fn total(&self) -> i64 {
        self.workspaces.values().flat_map(|m| m.values()).sum()
    }

    fn add(&mut self, ws: &str, element: &'static str, n: i64) {
        if n > 0 {
            *self
                .workspaces
                .entry(ws.to_owned())
                .or_default()
                .entry(element)
                .or_default() += n;
        }
    }
}

/// What one visitor-expiry batch deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitorBatch {
    /// The visitors deleted: those of the given ids that were still visitors last seen before
    /// the horizon when the batch committed.
    pub deleted: Vec<ContactId>,
    /// The subject keys destroyed, with the visitor that owned each.
    pub subject_keys: Vec<(ContactId, SubjectKeyId)>,
    /// Rows deleted per data element (`contacts`, `subject_keys`, `conversations`, …).
    pub counts: BTreeMap<&'static str, i64>,
}

/// A visitor batch counted and ready to commit.
struct PreparedBatch {
    visitors: Vec<ContactId>,
    keys: Vec<(ContactId, SubjectKeyId)>,
    conversations: Vec<String>,
    attachments: Vec<String>,
    counts: BTreeMap<&'static str, i64>,
    unit: Vec<Stmt>,
}

/// The parameters of a batch's statements: workspace, horizon, and the ids filling the fixed
/// list (a shorter batch repeats its last id, which changes nothing).
fn batch_args(ws: &WorkspaceId, horizon: i64, ids: &[ContactId]) -> Result<Vec<Arg>, StoreError> {
    if ids.len() > VISITOR_BATCH_MAX {
        return Err(StoreError::Conflict("retention_batch_too_large"));
    }
    let mut args = Vec::with_capacity(VISITOR_BATCH_MAX + 2);
    args.push(Arg::Text(ws.to_string()));
    args.push(Arg::Int(horizon));
    args.extend(ids.iter().map(|id| Arg::Text(id.to_string())));
    let fill = ids.last().map_or_else(String::new, ToString::to_string);
    args.resize(VISITOR_BATCH_MAX + 2, Arg::Text(fill));
    Ok(args)
}

// ------------------------------------------------------------------ visitor batches

/// `$3` … `$1002`: the ids of one batch, [`VISITOR_BATCH_MAX`] placeholders.
macro_rules! batch_ids {
    () => {
        concat!(
            "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, ",
            "$23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, ",
            "$43, $44, $45, $46, $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57, $58, $59, $60, $61, $62, ",
            "$63, $64, $65, $66, $67, $68, $69, $70, $71, $72, $73, $74, $75, $76, $77, $78, $79, $80, $81, $82, ",
            "$83, $84, $85, $86, $87, $88, $89, $90, $91, $92, $93, $94, $95, $96, $97, $98, $99, $100, $101, $102, ",
            "$103, $104, $105, $106, $107, $108, $109, $110, $111, $112, $113, $114, $115, $116, $117, $118, $119, $120, $121, $122, ",
            "$123, $124, $125, $126, $127, $128, $129, $130, $131, $132, $133, $134, $135, $136, $137, $138, $139, $140, $141, $142, ",
            "$143, $144, $145, $146, $147, $148, $149, $150, $151, $152, $153, $154, $155, $156, $157, $158, $159, $160, $161, $162, ",
            "$163, $164, $165, $166, $167, $168, $169, $170, $171, $172, $173, $174, $175, $176, $177, $178, $179, $180, $181, $182, ",
            "$183, $184, $185, $186, $187, $188, $189, $190, $191, $192, $193, $194, $195, $196, $197, $198, $199, $200, $201, $202, ",
            "$203, $204, $205, $206, $207, $208, $209, $210, $211, $212, $213, $214, $215, $216, $217, $218, $219, $220, $221, $222, ",
            "$223, $224, $225, $226, $227, $228, $229, $230, $231, $232, $233, $234, $235, $236, $237, $238, $239, $240, $241, $242, ",
            "$243, $244, $245, $246, $247, $248, $249, $250, $251, $252, $253, $254, $255, $256, $257, $258, $259, $260, $261, $262, ",
            "$263, $264, $265, $266, $267, $268, $269, $270, $271, $272, $273, $274, $275, $276, $277, $278, $279, $280, $281, $282, ",
            "$283, $284, $285, $286, $287, $288, $289, $290, $291, $292, $293, $294, $295, $296, $297, $298, $299, $300, $301, $302, ",
            "$303, $304, $305, $306, $307, $308, $309, $310, $311, $312, $313, $314, $315, $316, $317, $318, $319, $320, $321, $322, ",
            "$323, $324, $325, $326, $327, $328, $329, $330, $331, $332, $333, $334, $335, $336, $337, $338, $339, $340, $341, $342, ",
            "$343, $344, $345, $346, $347, $348, $349, $350, $351, $352, $353, $354, $355, $356, $357, $358, $359, $360, $361, $362, ",
            "$363, $364, $365, $366, $367, $368, $369, $370, $371, $372, $373, $374, $375, $376, $377, $378, $379, $380, $381, $382, ",
            "$383, $384, $385, $386, $387, $388, $389, $390, $391, $392, $393, $394, $395, $396, $397, $398, $399, $400, $401, $402, ",
            "$403, $404, $405, $406, $407, $408, $409, $410, $411, $412, $413, $414, $415, $416, $417, $418, $419, $420, $421, $422, ",
            "$423, $424, $425, $426, $427, $428, $429, $430, $431, $432, $433, $434, $435, $436, $437, $438, $439, $440, $441, $442, ",
            "$443, $444, $445, $446, $447, $448, $449, $450, $451, $452, $453, $454, $455, $456, $457, $458, $459, $460, $461, $462, ",
            "$463, $464, $465, $466, $467, $468, $469, $470, $471, $472, $473, $474, $475, $476, $477, $478, $479, $480, $481, $482, ",
            "$483, $484, $485, $486, $487, $488, $489, $490, $491, $492, $493, $494, $495, $496, $497, $498, $499, $500, $501, $502, ",
            "$503, $504, $505, $506, $507, $508, $509, $510, $511, $512, $513, $514, $515, $516, $517, $518, $519, $520, $521, $522, ",
            "$523, $524, $525, $526, $527, $528, $529, $530, $531, $532, $533, $534, $535, $536, $537, $538, $539, $540, $541, $542, ",
            "$543, $544, $545, $546, $547, $548, $549, $550, $551, $552, $553, $554, $555, $556, $557, $558, $559, $560, $561, $562, ",
            "$563, $564, $565, $566, $567, $568, $569, $570, $571, $572, $573, $574, $575, $576, $577, $578, $579, $580, $581, $582, ",
            "$583, $584, $585, $586, $587, $588, $589, $590, $591, $592, $593, $594, $595, $596, $597, $598, $599, $600, $601, $602, ",
            "$603, $604, $605, $606, $607, $608, $609, $610, $611, $612, $613, $614, $615, $616, $617, $618, $619, $620, $621, $622, ",
            "$623, $624, $625, $626, $627, $628, $629, $630, $631, $632, $633, $634, $635, $636, $637, $638, $639, $640, $641, $642, ",
            "$643, $644, $645, $646, $647, $648, $649, $650, $651, $652, $653, $654, $655, $656, $657, $658, $659, $660, $661, $662, ",
            "$663, $664, $665, $666, $667, $668, $669, $670, $671, $672, $673, $674, $675, $676, $677, $678, $679, $680, $681, $682, ",
            "$683, $684, $685, $686, $687, $688, $689, $690, $691, $692, $693, $694, $695, $696, $697, $698, $699, $700, $701, $702, ",
            "$703, $704, $705, $706, $707, $708, $709, $710, $711, $712, $713, $714, $715, $716, $717, $718, $719, $720, $721, $722, ",
            "$723, $724, $725, $726, $727, $728, $729, $730, $731, $732, $733, $734, $735, $736, $737, $738, $739, $740, $741, $742, ",
            "$743, $744, $745, $746, $747, $748, $749, $750, $751, $752, $753, $754, $755, $756, $757, $758, $759, $760, $761, $762, ",
            "$763, $764, $765, $766, $767, $768, $769, $770, $771, $772, $773, $774, $775, $776, $777, $778, $779, $780, $781, $782, ",
            "$783, $784, $785, $786, $787, $788, $789, $790, $791, $792, $793, $794, $795, $796, $797, $798, $799, $800, $801, $802, ",
            "$803, $804, $805, $806, $807, $808, $809, $810, $811, $812, $813, $814, $815, $816, $817, $818, $819, $820, $821, $822, ",
            "$823, $824, $825, $826, $827, $828, $829, $830, $831, $832, $833, $834, $835, $836, $837, $838, $839, $840, $841, $842, ",
            "$843, $844, $845, $846, $847, $848, $849, $850, $851, $852, $853, $854, $855, $856, $857, $858, $859, $860, $861, $862, ",
            "$863, $864, $865, $866, $867, $868, $869, $870, $871, $872, $873, $874, $875, $876, $877, $878, $879, $880, $881, $882, ",
            "$883, $884, $885, $886, $887, $888, $889, $890, $891, $892, $893, $894, $895, $896, $897, $898, $899, $900, $901, $902, ",
            "$903, $904, $905, $906, $907, $908, $909, $910, $911, $912, $913, $914, $915, $916, $917, $918, $919, $920, $921, $922, ",
            "$923, $924, $925, $926, $927, $928, $929, $930, $931, $932, $933, $934, $935, $936, $937, $938, $939, $940, $941, $942, ",
            "$943, $944, $945, $946, $947, $948, $949, $950, $951, $952, $953, $954, $955, $956, $957, $958, $959, $960, $961, $962, ",
            "$963, $964, $965, $966, $967, $968, $969, $970, $971, $972, $973, $974, $975, $976, $977, $978, $979, $980, $981, $982, ",
            "$983, $984, $985, $986, $987, $988, $989, $990, $991, $992, $993, $994, $995, $996, $997, $998, $999, $1000, $1001, $1002",
        )
    };
}

/// The guard on `contacts`: still a visitor last seen before the horizon (`$2`). Written as
/// expressions (`role || ''`, `last_seen_at + 0`) so that no index can serve it: the rows are
/// found by primary key from the batch's ids, and the guard only filters them. (Without
/// statistics SQLite would otherwise walk `contacts_last_seen` over every expired visitor of
/// the store for each statement, which made a batch cost as much as the whole backlog.)
macro_rules! guard {
    () => {
        "role || '' = 'visitor' AND last_seen_at + 0 < $2"
    };
}

/// The batch's contacts that pass the guard (`$1` workspace, `$2` horizon, `$3…` ids). Every
/// statement of a batch goes through it.
macro_rules! expired_in_batch {
    () => {
        concat!(
            "SELECT id FROM contacts WHERE workspace_id = $1 AND ",
            guard!(),
            " AND id IN (",
            batch_ids!(),
            ")"
        )
    };
}

/// Their conversations.
macro_rules! conversations_in_batch {
    () => {
        concat!(
            "SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id IN (",
            expired_in_batch!(),
            ")"
        )
    };
}

/// Their messenger sessions' rows, and the rows naming their conversations.
macro_rules! session_conversations_in_batch {
    () => {
        concat!(
            "FROM messenger_session_conversations WHERE workspace_id = $1 AND (token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND contact_id IN (",
            expired_in_batch!(),
            ")) OR conversation_id IN (",
            conversations_in_batch!(),
            "))"
        )
    };
}

/// What the batch will delete, in one read: ids tagged `v` (visitor), `k` (subject key, with
/// its `owner`), `c` (conversation), `a` (attachment), then one row per counted element
/// (`kind` = the element, `n` = its count). The guarded visitors (`v`) and their conversations (`c`) are computed
/// once (materialised) and shared by every part.
const BATCH_ROWS: &str = concat!(
    "WITH v AS MATERIALIZED (",
    expired_in_batch!(),
    "), c AS MATERIALIZED (SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id IN (SELECT id FROM v)) ",
    "SELECT 'v' AS kind, id, '' AS owner, 0 AS n FROM v",
    " UNION ALL SELECT 'k', id, owner_id, 0 FROM subject_keys WHERE workspace_id = $1 AND owner_id IN (SELECT id FROM v)",
    " UNION ALL SELECT 'c', id, '', 0 FROM c",
    " UNION ALL SELECT 'a', id, '', 0 FROM attachments WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM c)",
    " UNION ALL SELECT 'conversation_parts', '', '', COUNT(*) FROM conversation_parts WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM c)",
    " UNION ALL SELECT 'events', '', '', COUNT(*) FROM events WHERE workspace_id = $1 AND contact_id IN (SELECT id FROM v)",
    " UNION ALL SELECT 'visitor_tokens', '', '', COUNT(*) FROM visitor_tokens WHERE workspace_id = $1 AND contact_id IN (SELECT id FROM v)",
    " UNION ALL SELECT 'messenger_sessions', '', '', COUNT(*) FROM messenger_sessions WHERE workspace_id = $1 AND contact_id IN (SELECT id FROM v)",
    " UNION ALL SELECT 'messenger_session_conversations', '', '', COUNT(*) FROM messenger_session_conversations WHERE workspace_id = $1 AND (token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND contact_id IN (SELECT id FROM v)) OR conversation_id IN (SELECT id FROM c))"
);

/// The batch's deletions, in order: keys first (from then on nothing of these visitors can
/// be opened), then what refers to others before what it refers to. A deletion whose count is
/// zero is left out of the transaction: should such a row appear after the count (a message
/// added to an expired visitor's conversation), the foreign key from it to the conversation
/// or contact being deleted fails the transaction, which is then counted again. Subject keys
/// (no foreign key) and the contacts are always deleted.
const DELETE_KEYS: &str = concat!(
    "DELETE FROM subject_keys WHERE workspace_id = $1 AND owner_id IN (",
    expired_in_batch!(),
    ")"
);
const DELETE_SESSION_CONVERSATIONS: &str = concat!("DELETE ", session_conversations_in_batch!());
const DELETE_SESSIONS: &str = concat!(
    "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND contact_id IN (",
    expired_in_batch!(),
    ")"
);
const DELETE_TOKENS: &str = concat!(
    "DELETE FROM visitor_tokens WHERE workspace_id = $1 AND contact_id IN (",
    expired_in_batch!(),
    ")"
);
const DELETE_ATTACHMENTS: &str = concat!(
    "DELETE FROM attachments WHERE workspace_id = $1 AND conversation_id IN (",
    conversations_in_batch!(),
    ")"
);
const DELETE_PARTS: &str = concat!(
    "DELETE FROM conversation_parts WHERE workspace_id = $1 AND conversation_id IN (",
    conversations_in_batch!(),
    ")"
);
const DELETE_CONVERSATIONS: &str = concat!(
    "DELETE FROM conversations WHERE workspace_id = $1 AND contact_id IN (",
    expired_in_batch!(),
    ")"
);
const DELETE_EVENTS: &str = concat!(
    "DELETE FROM events WHERE workspace_id = $1 AND contact_id IN (",
    expired_in_batch!(),
    ")"
);
const DELETE_CONTACTS: &str = concat!(
    "DELETE FROM contacts WHERE workspace_id = $1 AND ",
    guard!(),
    " AND id IN (",
    batch_ids!(),
    ")"
);

/// The batch's deletions in order, each with the element it deletes.
const DELETIONS: &[(&str, &str)] = &[
    (DELETE_KEYS, "subject_keys"),
    (
        DELETE_SESSION_CONVERSATIONS,
        "messenger_session_conversations",
    ),
    (DELETE_SESSIONS, "messenger_sessions"),
    (DELETE_TOKENS, "visitor_tokens"),
    (DELETE_ATTACHMENTS, "attachments"),
    (DELETE_PARTS, "conversation_parts"),
    (DELETE_CONVERSATIONS, "conversations"),
    (DELETE_EVENTS, "events"),
    (DELETE_CONTACTS, "contacts"),
];

/// The elements [`BATCH_ROWS`] counts (rather than listing ids).
const COUNTED: [&str; 5] = [
    "conversation_parts",
    "events",
    "visitor_tokens",
    "messenger_sessions",
    "messenger_session_conversations",
];

/// Attempts at one batch before it is left to the next sweep (each failed attempt means rows
/// changed between counting and deleting: a visitor seen, a message added).
const BATCH_ATTEMPTS: usize = 5;

// ------------------------------------------------------------------ rows that expire

/// Rows that expire on their own, one kind per table. Parameters of the per-workspace
/// statements: `$1` workspace, `$2` window size, `$3` (and `$4`) cutoffs. A window's
/// statements run in order in one transaction; each must change exactly the rows counted by
/// its `count` (same text, same parameters, same window), and the last is the rule's own rows.
struct Expiring {
    /// Workspaces with expired rows, in order (parameters: see [`Expiring::find_args`]).
    workspaces: &'static str,
    /// The dry run: `(element, SELECT workspace_id, COUNT(*) AS n … GROUP BY workspace_id)`.
    plan: &'static [(&'static str, &'static str)],
    windows: &'static [Window],
    cutoff: Cutoff,
}

struct Window {
    element: &'static str,
    count: &'static str,
    delete: &'static str,
}

/// How a rule's cutoffs follow from the sweep's time.
#[derive(Clone, Copy)]
enum Cutoff {
    /// `as_of - ms` (one cutoff).
    Age(i64),
    /// The workspace's teammate-session idle and absolute lifetimes (two cutoffs).
    TeammateSessions,
}

const EXPIRING: &[Expiring] = &[
    Expiring {
        workspaces: "SELECT DISTINCT workspace_id FROM messenger_sessions WHERE expires_at <= $1 ORDER BY workspace_id",
        plan: &[
            (
                "messenger_sessions",
                "SELECT workspace_id, COUNT(*) AS n FROM messenger_sessions WHERE expires_at <= $1 GROUP BY workspace_id",
            ),
            (
                "messenger_session_conversations",
                "SELECT s.workspace_id, COUNT(*) AS n FROM messenger_session_conversations m JOIN messenger_sessions s ON s.token_hash = m.token_hash WHERE s.expires_at <= $1 GROUP BY s.workspace_id",
            ),
        ],
        windows: &[
            Window {
                element: "messenger_session_conversations",
                count: "SELECT COUNT(*) AS n FROM messenger_session_conversations WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND expires_at <= $3 ORDER BY expires_at, token_hash LIMIT $2)",
                delete: "DELETE FROM messenger_session_conversations WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND expires_at <= $3 ORDER BY expires_at, token_hash LIMIT $2)",
            },
            Window {
                element: "messenger_sessions",
                count: "SELECT COUNT(*) AS n FROM (SELECT 1 FROM messenger_sessions WHERE workspace_id = $1 AND expires_at <= $3 LIMIT $2) w",
                // A session still named by a conversation row (one added since the count) is
                // left, which fails the count and retries the window.
                delete: "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND expires_at <= $3 ORDER BY expires_at, token_hash LIMIT $2) AND NOT EXISTS (SELECT 1 FROM messenger_session_conversations m WHERE m.token_hash = messenger_sessions.token_hash)",
            },
        ],
        cutoff: Cutoff::Age(0),
    },
    Expiring {
        workspaces: "SELECT DISTINCT s.workspace_id FROM teammate_sessions s LEFT JOIN workspace_security w ON w.workspace_id = s.workspace_id WHERE s.last_seen_at < $1 - COALESCE(w.session_idle_s, $2) * 1000 OR s.created_at < $1 - COALESCE(w.session_absolute_s, $3) * 1000 ORDER BY s.workspace_id",
        plan: &[(
            "teammate_sessions",
            "SELECT s.workspace_id, COUNT(*) AS n FROM teammate_sessions s LEFT JOIN workspace_security w ON w.workspace_id = s.workspace_id WHERE s.last_seen_at < $1 - COALESCE(w.session_idle_s, $2) * 1000 OR s.created_at < $1 - COALESCE(w.session_absolute_s, $3) * 1000 GROUP BY s.workspace_id",
        )],
        windows: &[Window {
            element: "teammate_sessions",
            count: "SELECT COUNT(*) AS n FROM (SELECT 1 FROM teammate_sessions WHERE workspace_id = $1 AND (last_seen_at < $3 OR created_at < $4) LIMIT $2) w",
            delete: "DELETE FROM teammate_sessions WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM teammate_sessions WHERE workspace_id = $1 AND (last_seen_at < $3 OR created_at < $4) ORDER BY token_hash LIMIT $2)",
        }],
        cutoff: Cutoff::TeammateSessions,
    },
    Expiring {
        workspaces: "SELECT DISTINCT workspace_id FROM login_throttle WHERE updated_at < $1 AND locked_until < $1 ORDER BY workspace_id",
        plan: &[(
            "login_throttle",
            "SELECT workspace_id, COUNT(*) AS n FROM login_throttle WHERE updated_at < $1 AND locked_until < $1 GROUP BY workspace_id",
        )],
        windows: &[Window {
            element: "login_throttle",
            count: "SELECT COUNT(*) AS n FROM (SELECT 1 FROM login_throttle WHERE workspace_id = $1 AND updated_at < $3 AND locked_until < $3 LIMIT $2) w",
            delete: "DELETE FROM login_throttle WHERE workspace_id = $1 AND subject IN (SELECT subject FROM login_throttle WHERE workspace_id = $1 AND updated_at < $3 AND locked_until < $3 ORDER BY updated_at, subject LIMIT $2)",
        }],
        cutoff: Cutoff::Age(THROTTLE_QUIET_MS),
    },
    Expiring {
        workspaces: "SELECT DISTINCT workspace_id FROM api_tokens WHERE expires_at <= $1 ORDER BY workspace_id",
        plan: &[(
            "api_tokens",
            "SELECT workspace_id, COUNT(*) AS n FROM api_tokens WHERE expires_at <= $1 GROUP BY workspace_id",
        )],
        windows: &[Window {
            element: "api_tokens",
            count: "SELECT COUNT(*) AS n FROM (SELECT 1 FROM api_tokens WHERE workspace_id = $1 AND expires_at <= $3 LIMIT $2) w",
            delete: "DELETE FROM api_tokens WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM api_tokens WHERE workspace_id = $1 AND expires_at <= $3 ORDER BY expires_at, token_hash LIMIT $2)",
        }],
        cutoff: Cutoff::Age(EXPIRED_TOKEN_KEEP_MS),
    },
    Expiring {
        workspaces: "SELECT DISTINCT workspace_id FROM invitations WHERE expires_at <= $1 ORDER BY workspace_id",
        plan: &[(
            "invitations",
            "SELECT workspace_id, COUNT(*) AS n FROM invitations WHERE expires_at <= $1 GROUP BY workspace_id",
        )],
        windows: &[Window {
            element: "invitations",
            count: "SELECT COUNT(*) AS n FROM (SELECT 1 FROM invitations WHERE workspace_id = $1 AND expires_at <= $3 LIMIT $2) w",
            delete: "DELETE FROM invitations WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM invitations WHERE workspace_id = $1 AND expires_at <= $3 ORDER BY expires_at, token_hash LIMIT $2)",
        }],
        cutoff: Cutoff::Age(0),
    },
    Expiring {
        workspaces: "SELECT DISTINCT workspace_id FROM webauthn_ceremonies WHERE expires_at <= $1 ORDER BY workspace_id",
        plan: &[(
            "webauthn_ceremonies",
            "SELECT workspace_id, COUNT(*) AS n FROM webauthn_ceremonies WHERE expires_at <= $1 GROUP BY workspace_id",
        )],
        windows: &[Window {
            element: "webauthn_ceremonies",
            count: "SELECT COUNT(*) AS n FROM (SELECT 1 FROM webauthn_ceremonies WHERE workspace_id = $1 AND expires_at <= $3 LIMIT $2) w",
            delete: "DELETE FROM webauthn_ceremonies WHERE workspace_id = $1 AND token_hash IN (SELECT token_hash FROM webauthn_ceremonies WHERE workspace_id = $1 AND expires_at <= $3 ORDER BY expires_at, token_hash LIMIT $2)",
        }],
        cutoff: Cutoff::Age(0),
    },
];

impl Expiring {
    /// Parameters of `workspaces` and of the plan's queries.
    fn find_args(&self, as_of_ms: i64) -> Vec<i64> {
        match self.cutoff {
            Cutoff::Age(ms) => vec![as_of_ms - ms],
            Cutoff::TeammateSessions => {
                let d = SecuritySettings::default();
                vec![as_of_ms, d.session_idle_s, d.session_absolute_s]
            }
        }
    }
}

// ------------------------------------------------------------------ dry-run queries

/// Per-workspace counts of what expired visitors own, element by element (dry run). Their
/// messenger sessions have always expired too (a session opened marks the contact seen and
/// lives at most a day), so they are counted with the expired sessions.
const VISITOR_PLAN: &[(&str, &str)] = &[
    (
        "contacts",
        "SELECT workspace_id, COUNT(*) AS n FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 GROUP BY workspace_id",
    ),
    (
        "conversations",
        "SELECT k.workspace_id, COUNT(*) AS n FROM conversations c JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "conversation_parts",
        "SELECT k.workspace_id, COUNT(*) AS n FROM conversation_parts p JOIN conversations c ON c.workspace_id = p.workspace_id AND c.id = p.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "events",
        "SELECT k.workspace_id, COUNT(*) AS n FROM events e JOIN contacts k ON k.workspace_id = e.workspace_id AND k.id = e.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "attachments",
        "SELECT k.workspace_id, COUNT(*) AS n FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "subject_keys",
        "SELECT k.workspace_id, COUNT(*) AS n FROM subject_keys s JOIN contacts k ON k.workspace_id = s.workspace_id AND k.id = s.owner_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
    (
        "visitor_tokens",
        "SELECT k.workspace_id, COUNT(*) AS n FROM visitor_tokens t JOIN contacts k ON k.workspace_id = t.workspace_id AND k.id = t.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 GROUP BY k.workspace_id",
    ),
];

/// The same counts for one workspace with its own (shorter) visitor horizon.
const VISITOR_PLAN_ONE: &[(&str, &str)] = &[
    (
        "contacts",
        "SELECT COUNT(*) AS n FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 AND workspace_id = $2",
    ),
    (
        "conversations",
        "SELECT COUNT(*) AS n FROM conversations c JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "conversation_parts",
        "SELECT COUNT(*) AS n FROM conversation_parts p JOIN conversations c ON c.workspace_id = p.workspace_id AND c.id = p.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "events",
        "SELECT COUNT(*) AS n FROM events e JOIN contacts k ON k.workspace_id = e.workspace_id AND k.id = e.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "attachments",
        "SELECT COUNT(*) AS n FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "subject_keys",
        "SELECT COUNT(*) AS n FROM subject_keys s JOIN contacts k ON k.workspace_id = s.workspace_id AND k.id = s.owner_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
    (
        "visitor_tokens",
        "SELECT COUNT(*) AS n FROM visitor_tokens t JOIN contacts k ON k.workspace_id = t.workspace_id AND k.id = t.contact_id WHERE k.role = 'visitor' AND k.last_seen_at < $1 AND k.workspace_id = $2",
    ),
];

/// Conversations (and what they hold) idle since before `$1` in workspace `$2`, not counting
/// those of visitors that expire anyway (last seen before `$3`).
const CONVERSATION_PLAN: &[(&str, &str)] = &[
    (
        "conversations",
        "SELECT COUNT(*) AS n FROM conversations c JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE c.workspace_id = $2 AND NOT (k.role = 'visitor' AND k.last_seen_at < $3) AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1",
    ),
    (
        "conversation_parts",
        "SELECT COUNT(*) AS n FROM conversation_parts q JOIN conversations c ON c.workspace_id = q.workspace_id AND c.id = q.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE c.workspace_id = $2 AND NOT (k.role = 'visitor' AND k.last_seen_at < $3) AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1",
    ),
    (
        "attachments",
        "SELECT COUNT(*) AS n FROM attachments a JOIN conversations c ON c.workspace_id = a.workspace_id AND c.id = a.conversation_id JOIN contacts k ON k.workspace_id = c.workspace_id AND k.id = c.contact_id WHERE c.workspace_id = $2 AND NOT (k.role = 'visitor' AND k.last_seen_at < $3) AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1",
    ),
];

const TEAMMATE_PLAN: &str = "SELECT workspace_id, COUNT(*) AS n FROM teammates WHERE removed_at IS NOT NULL AND removed_at < $1 GROUP BY workspace_id";

impl Cell {
    /// The workspace's retention settings (defaults until first set).
    pub async fn retention_settings(
        &self,
        ws: &WorkspaceId,
    ) -> Result<RetentionSettings, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT conversation_days, visitor_days FROM workspace_retention WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else {
            return Ok(RetentionSettings::default());
        };
        Ok(RetentionSettings {
            conversation_days: col::<Option<i64>>(&row, "conversation_days")?
                .map(|d| d.clamp(0, i64::from(u32::MAX)) as u32),
            visitor_days: col::<i64>(&row, "visitor_days")?.clamp(0, i64::from(u32::MAX)) as u32,
        })
    }

    /// Replace the workspace's retention settings (checked), recording before and after.
    pub async fn set_retention_settings(
        &self,
        ws: &WorkspaceId,
        settings: RetentionSettings,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let settings = settings.check().map_err(StoreError::Invalid)?;
        let before = self.retention_settings(ws).await?;
        let json = |s: &RetentionSettings| {
            serde_json::json!({
                "conversation_days": s.conversation_days,
                "visitor_days": s.visitor_days,
            })
        };
        let act = act
            .clone()
            .with("before", json(&before))
            .with("after", json(&settings));
        let entry = self.activity_stmt(ws, &act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "INSERT INTO workspace_retention (workspace_id, conversation_days, visitor_days, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO UPDATE SET conversation_days = excluded.conversation_days, visitor_days = excluded.visitor_days, updated_at = excluded.updated_at",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::OptInt(settings.conversation_days.map(i64::from)),
                        Arg::Int(i64::from(settings.visitor_days)),
                        Arg::Int(crate::now_ms()),
                    ],
                ),
                entry,
            ])
            .await
    }

    /// Workspaces with their own retention settings.
    async fn custom_retention(&self) -> Result<Vec<(WorkspaceId, RetentionSettings)>, StoreError> {
        let rows = sqlx::query(
            "SELECT workspace_id, conversation_days, visitor_days FROM workspace_retention ORDER BY workspace_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::new();
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
            if ws.region() != self.region {
                continue;
            }
            let s = RetentionSettings {
                conversation_days: col::<Option<i64>>(row, "conversation_days")?
                    .map(|d| d.clamp(0, i64::from(u32::MAX)) as u32),
                visitor_days: col::<i64>(row, "visitor_days")?.clamp(0, i64::from(u32::MAX)) as u32,
            };
            if s != RetentionSettings::default() {
                out.push((ws, s));
            }
        }
        Ok(out)
    }

    async fn count_one(
        &self,
        sql: &'static str,
        a: i64,
        ws: &WorkspaceId,
        c: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut q = sqlx::query_scalar(sql).bind(a).bind(ws.as_str());
        if let Some(c) = c {
            q = q.bind(c);
        }
        q.fetch_one(&self.pool).await.map_err(StoreError::Db)
    }

    /// What a sweep at `as_of_ms` would delete, deleting nothing.
    pub async fn retention_plan(&self, as_of_ms: i64) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport {
            as_of_ms,
            ..Default::default()
        };
        let visitor_horizon = as_of_ms - VISITOR_MAX_AGE_MS;
        for (element, sql) in VISITOR_PLAN {
            self.plan_rows(&mut report, element, sql, &[visitor_horizon])
                .await?;
        }
        self.plan_rows(
            &mut report,
            "teammates",
            TEAMMATE_PLAN,
            &[as_of_ms - REMOVED_TEAMMATE_MAX_AGE_MS],
        )
        .await?;
        for (ws, s) in self.custom_retention().await? {
            let horizon = as_of_ms - i64::from(s.visitor_days) * DAY_MS;
            if s.visitor_days < interlock_domain::retention::MAX_VISITOR_DAYS {
                // This workspace's own horizon replaces the global one for its visitors.
                let w = report.workspaces.entry(ws.to_string()).or_default();
                for (element, _) in VISITOR_PLAN {
                    w.remove(element);
                }
                for (element, sql) in VISITOR_PLAN_ONE {
                    let n = self.count_one(sql, horizon, &ws, None).await?;
                    report.add(ws.as_str(), element, n);
                }
            }
            if let Some(days) = s.conversation_days {
                let idle = as_of_ms - i64::from(days) * DAY_MS;
                for (element, sql) in CONVERSATION_PLAN {
                    let n = self.count_one(sql, idle, &ws, Some(horizon)).await?;
                    report.add(ws.as_str(), element, n);
                }
            }
            if report
                .workspaces
                .get(ws.as_str())
                .is_some_and(|m| m.is_empty())
            {
                report.workspaces.remove(ws.as_str());
            }
        }
        for rule in EXPIRING {
            let args = rule.find_args(as_of_ms);
            for (element, sql) in rule.plan {
                self.plan_rows(&mut report, element, sql, &args).await?;
            }
        }
        // A workspace the 13-month rule deletes loses everything: its whole count replaces
        // what the other rules would have taken from it.
        for (ws, counts) in self.workspace_deletion_plan(as_of_ms).await? {
            report.workspaces.insert(ws.to_string(), counts);
        }
        Ok(report)
    }

    async fn plan_rows(
        &self,
        report: &mut RetentionReport,
        element: &'static str,
        sql: &'static str,
        args: &[i64],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(*a);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(StoreError::Db)?;
        for row in &rows {
            let ws: String = col(row, "workspace_id")?;
            report.add(&ws, element, col(row, "n")?);
        }
        Ok(())
    }

    /// Delete what has expired at `as_of_ms`, `batch` candidates at a time (visitors: at most
    /// [`VISITOR_BATCH_MAX`] per transaction), stopping after `max` deletions if given (a
    /// bounded run; the next run carries on). Returns what was deleted; records it per
    /// workspace in the activity log.
    pub async fn retention_sweep(
        &self,
        as_of_ms: i64,
        batch: i64,
        max: Option<i64>,
    ) -> Result<RetentionReport, StoreError> {
        let batch = batch.max(1);
        let mut budget = max.unwrap_or(i64::MAX);
        let mut report = RetentionReport {
            as_of_ms,
            ..Default::default()
        };
        // Rows that expire on their own first: an expired visitor's messenger sessions have
        // expired too, and are counted here, as the plan counts them.
        for rule in EXPIRING {
            self.sweep_expiring(rule, as_of_ms, batch, &mut budget, &mut report)
                .await?;
        }
        let visitor_horizon = as_of_ms - VISITOR_MAX_AGE_MS;
        while budget > 0 {
            let rows = sqlx::query(
                "SELECT workspace_id, id FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 ORDER BY last_seen_at LIMIT $2",
            )
            .bind(visitor_horizon)
            .bind(batch.min(budget))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            if rows.is_empty() {
                break;
            }
            // The candidates, per workspace (a batch's transaction is one workspace's: the
            // activity log is a chain per workspace).
            let mut by_ws: BTreeMap<String, Vec<ContactId>> = BTreeMap::new();
            for row in &rows {
                let id = parse_id(ContactId::parse(&col::<String>(row, "id")?))?;
                by_ws
                    .entry(col::<String>(row, "workspace_id")?)
                    .or_default()
                    .push(id);
            }
            let mut progressed = false;
            for (ws, ids) in by_ws {
                let ws = parse_id(WorkspaceId::parse(&ws))?;
                if ws.region() != self.region {
                    continue;
                }
                progressed |= self
                    .expire_visitors(&ws, visitor_horizon, &ids, &mut budget, &mut report)
                    .await?;
            }
            if !progressed {
                break;
            }
        }
        for (ws, s) in self.custom_retention().await? {
            if s.visitor_days < interlock_domain::retention::MAX_VISITOR_DAYS {
                let horizon = as_of_ms - i64::from(s.visitor_days) * DAY_MS;
                self.sweep_visitors_of(&ws, horizon, batch, &mut budget, &mut report)
                    .await?;
            }
            if let Some(days) = s.conversation_days {
                let idle = as_of_ms - i64::from(days) * DAY_MS;
                self.sweep_conversations_of(&ws, idle, batch, &mut budget, &mut report)
                    .await?;
            }
        }
        self.sweep_removed_teammates(as_of_ms, batch, &mut budget, &mut report)
            .await?;
        let system = Actor::system();
        for (ws, counts) in &report.workspaces {
            let ws = parse_id(WorkspaceId::parse(ws))?;
            let mut act = NewActivity::new(
                ActivityType::BulkDeleted,
                &system,
                Target::kind("workspace_data"),
            )
            .with("reason", "retention")
            .with("as_of_ms", as_of_ms);
            for (element, n) in counts {
                act = act.with(element, *n);
            }
            self.record_activity(&ws, &act).await?;
        }
        Ok(report)
    }

    /// Expire `ids` (one workspace's candidates) in batches of at most [`VISITOR_BATCH_MAX`]
    /// within the budget. True if anything was deleted.
    async fn expire_visitors(
        &self,
        ws: &WorkspaceId,
        horizon: i64,
        ids: &[ContactId],
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<bool, StoreError> {
        let take = ids.len().min(usize::try_from(*budget).unwrap_or(0));
        let mut progressed = false;
        for chunk in ids[..take].chunks(VISITOR_BATCH_MAX) {
            let done = self.expire_visitor_batch(ws, horizon, chunk).await?;
            if !done.deleted.is_empty() {
                progressed = true;
                *budget -= done.deleted.len() as i64;
            }
            for (element, n) in done.counts {
                report.add(ws.as_str(), element, n);
            }
        }
        Ok(progressed)
    }

    /// Delete, in one transaction, those of `ids` (at most [`VISITOR_BATCH_MAX`]) that are
    /// still visitors of `ws` last seen before `horizon`, with everything they own: their
    /// subject keys first (crypto-shredding), messenger sessions and tokens, attachments,
    /// messages, conversations and events, and one `data.bulk_deleted` entry by `system`
    /// (`reason = "retention.visitor_expired"`, the contact ids, counts per data element).
    /// Attachment files are removed after the commit.
    ///
    /// Every statement re-checks the guard, and every counted statement must delete exactly
    /// what was counted: if anything changed in between (a visitor seen, a message added), the
    /// transaction rolls back and the batch is counted again (a few times; then it is left to
    /// the next sweep). What it returns is exactly what was deleted. The transaction itself is
    /// `commit_visitor_batch`'s.
    pub async fn expire_visitor_batch(
        &self,
        ws: &WorkspaceId,
        horizon: i64,
        ids: &[ContactId],
    ) -> Result<VisitorBatch, StoreError> {
        self.check_region(ws)?;
        let args = batch_args(ws, horizon, ids)?;
        for _ in 0..BATCH_ATTEMPTS {
            let Some(prepared) = self.prepare_visitor_batch(ws, horizon, &args).await? else {
                return Ok(VisitorBatch::default());
            };
            match self.commit_visitor_batch(ws, prepared).await {
                Ok(done) => return Ok(done),
                // Something changed between counting and deleting: count again.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(workspace = %ws, "visitor batch kept changing; left to the next sweep");
        Ok(VisitorBatch::default())
    }

    /// Count a batch (`args` from [`batch_args`]) and build its transaction; `None` when none
    /// of its ids is an expired visitor any more.
    async fn prepare_visitor_batch(
        &self,
        ws: &WorkspaceId,
        horizon: i64,
        args: &[Arg],
    ) -> Result<Option<PreparedBatch>, StoreError> {
        let rows = crate::db::bind_all(sqlx::query(BATCH_ROWS), args)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let (mut visitors, mut keys, mut conversations, mut attachments) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        for row in &rows {
            let id: String = col(row, "id")?;
            match col::<String>(row, "kind")?.as_str() {
                "v" => visitors.push(parse_id(ContactId::parse(&id))?),
                "k" => keys.push((
                    parse_id(ContactId::parse(&col::<String>(row, "owner")?))?,
                    parse_id(SubjectKeyId::parse(&id))?,
                )),
                "c" => conversations.push(id),
                "a" => attachments.push(id),
                kind => {
                    if let Some(element) = COUNTED.iter().find(|e| **e == kind) {
                        counts.insert(element, col::<i64>(row, "n")?);
                    }
                }
            }
        }
        if visitors.is_empty() {
            return Ok(None);
        }
        counts.insert("contacts", visitors.len() as i64);
        counts.insert("subject_keys", keys.len() as i64);
        counts.insert("conversations", conversations.len() as i64);
        counts.insert("attachments", attachments.len() as i64);
        counts.retain(|_, n| *n > 0);
        let mut act = NewActivity::new(
            ActivityType::BulkDeleted,
            &Actor::system(),
            Target::kind("contacts"),
        )
        .with("reason", "retention.visitor_expired")
        .with("horizon_ms", horizon)
        .with(
            "contact_ids",
            visitors
                .iter()
                .map(|v| serde_json::Value::from(v.as_str()))
                .collect::<Vec<_>>(),
        );
        for (element, n) in &counts {
            act = act.with(element, *n);
        }
        // Keys first: from here on nothing of these visitors can be opened. Each counted
        // statement must delete exactly its count; one with nothing to delete is left out (see
        // `DELETE_KEYS`), except the keys and the contacts.
        let mut unit = Vec::with_capacity(DELETIONS.len() + 1);
        for (sql, element) in DELETIONS {
            let n = counts.get(element).copied().unwrap_or(0);
            if n > 0 || *element == "subject_keys" || *element == "contacts" {
                unit.push(Stmt::new(sql, args.to_vec()).expect(u64::try_from(n).unwrap_or(0)));
            }
        }
        unit.push(self.activity_stmt(ws, &act).await?);
        Ok(Some(PreparedBatch {
            visitors,
            keys,
            conversations,
            attachments,
            counts,
            unit,
        }))
    }

    /// Commit a prepared batch — the one transaction of a visitor-expiry batch — then forget
    /// its keys and conversations in the caches and remove its attachment files. `NotFound`
    /// (nothing deleted) if any counted statement found a different number of rows.
    async fn commit_visitor_batch(
        &self,
        ws: &WorkspaceId,
        batch: PreparedBatch,
    ) -> Result<VisitorBatch, StoreError> {
        // Write-ahead: the erasure ledger names every visitor with the keys it loses before
        // the deletion commits, so a backup restored later cannot bring one back.
        let at_ms = crate::now_ms();
        let mut keys_of: BTreeMap<&ContactId, Vec<String>> = BTreeMap::new();
        for (owner, k) in &batch.keys {
            keys_of.entry(owner).or_default().push(k.to_string());
        }
        let records: Vec<crate::ledger::ErasureRecord> = batch
            .visitors
            .iter()
            .map(|v| crate::ledger::ErasureRecord::Contact {
                workspace_id: ws.to_string(),
                contact_id: v.to_string(),
                subject_key_ids: keys_of.remove(v).unwrap_or_default(),
                at_ms,
            })
            .collect();
        crate::ledger::ErasureLedger::append_off_runtime(&self.ledger, records).await?;
        self.writer.write(batch.unit).await?;
        for (_, k) in &batch.keys {
            self.subject_keys.remove(&(ws.clone(), k.clone()));
        }
        for c in &batch.conversations {
            if let Ok(c) = ConversationId::parse(c) {
                self.conversations.remove(&(ws.clone(), c));
            }
        }
        for a in &batch.attachments {
            let Ok(a) = interlock_domain::AttachmentId::parse(a) else {
                continue;
            };
            if let Err(e) = self.blobs.delete(ws, &a).await {
                // The row and the key are gone: the file is unreadable ciphertext.
                tracing::warn!(workspace = %ws, error = %e, "attachment file not removed");
            }
        }
        Ok(VisitorBatch {
            deleted: batch.visitors,
            subject_keys: batch.keys,
            counts: batch.counts,
        })
    }

    /// One workspace's visitors last seen before its own (shorter) horizon.
    async fn sweep_visitors_of(
        &self,
        ws: &WorkspaceId,
        horizon: i64,
        batch: i64,
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        while *budget > 0 {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM contacts WHERE role = 'visitor' AND last_seen_at < $1 AND workspace_id = $2 ORDER BY last_seen_at LIMIT $3",
            )
            .bind(horizon)
            .bind(ws.as_str())
            .bind(batch.min(*budget))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            let ids = ids
                .iter()
                .map(|id| parse_id(ContactId::parse(id)))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.is_empty()
                || !self
                    .expire_visitors(ws, horizon, &ids, budget, report)
                    .await?
            {
                break;
            }
        }
        Ok(())
    }

    /// One workspace's conversations whose last message is older than `idle`.
    async fn sweep_conversations_of(
        &self,
        ws: &WorkspaceId,
        idle: i64,
        batch: i64,
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        loop {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT c.id FROM conversations c WHERE c.workspace_id = $2 AND COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.created_at) < $1 ORDER BY c.id LIMIT $3",
            )
            .bind(idle)
            .bind(ws.as_str())
            .bind(batch)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            let mut progressed = false;
            for id in &ids {
                if *budget <= 0 {
                    return Ok(());
                }
                let id = parse_id(ConversationId::parse(id))?;
                let act = NewActivity::new(
                    ActivityType::ConversationDeleted,
                    &Actor::system(),
                    Target::new("conversation", id.as_str()),
                )
                .with("reason", "retention.conversation_idle");
                match self.delete_conversation_if(ws, &id, &act, Some(idle)).await {
                    Ok(c) => {
                        progressed = true;
                        *budget -= 1;
                        let w = ws.as_str();
                        report.add(w, "conversations", 1);
                        report.add(w, "conversation_parts", c.parts);
                        report.add(w, "attachments", c.attachments);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Removed teammates' records, 30 days after removal, one guarded delete each.
    async fn sweep_removed_teammates(
        &self,
        as_of_ms: i64,
        batch: i64,
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        let horizon = as_of_ms - REMOVED_TEAMMATE_MAX_AGE_MS;
        while *budget > 0 {
            let rows = sqlx::query(
                "SELECT workspace_id, id FROM teammates WHERE removed_at IS NOT NULL AND removed_at < $1 ORDER BY removed_at, id LIMIT $2",
            )
            .bind(horizon)
            .bind(batch)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            let mut progressed = false;
            for row in &rows {
                if *budget <= 0 {
                    break;
                }
                let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
                let id = parse_id(TeammateId::parse(&col::<String>(row, "id")?))?;
                let deleted = self.writer
                    .write(vec![
                        Stmt::new(
                            "DELETE FROM teammates WHERE workspace_id = $1 AND id = $2 AND removed_at IS NOT NULL AND removed_at < $3",
                            vec![
                                Arg::Text(ws.to_string()),
                                Arg::Text(id.to_string()),
                                Arg::Int(horizon),
                            ],
                        )
                        .expect(1),
                    ])
                    .await;
                match deleted {
                    Ok(()) => {
                        progressed = true;
                        *budget -= 1;
                        report.add(ws.as_str(), "teammates", 1);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(())
    }

    /// One kind of expiring row: per workspace that has some, windows of at most `batch` rows,
    /// each deleted in one transaction that must delete exactly what was counted.
    async fn sweep_expiring(
        &self,
        rule: &Expiring,
        as_of_ms: i64,
        batch: i64,
        budget: &mut i64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        if *budget <= 0 {
            return Ok(());
        }
        let mut q = sqlx::query_scalar(rule.workspaces);
        for a in rule.find_args(as_of_ms) {
            q = q.bind(a);
        }
        let workspaces: Vec<String> = q.fetch_all(&self.pool).await.map_err(StoreError::Db)?;
        for ws in workspaces {
            let ws = parse_id(WorkspaceId::parse(&ws))?;
            if ws.region() != self.region {
                continue;
            }
            let cutoffs = match rule.cutoff {
                Cutoff::Age(ms) => vec![as_of_ms - ms],
                Cutoff::TeammateSessions => {
                    let s = self.security_settings(&ws).await?;
                    vec![
                        as_of_ms - s.session_idle_s.saturating_mul(1000),
                        as_of_ms - s.session_absolute_s.saturating_mul(1000),
                    ]
                }
            };
            let mut misses = 0;
            loop {
                if *budget <= 0 {
                    return Ok(());
                }
                let size = batch.min(*budget);
                let mut args = vec![Arg::Text(ws.to_string()), Arg::Int(size)];
                args.extend(cutoffs.iter().map(|c| Arg::Int(*c)));
                let mut counts = Vec::with_capacity(rule.windows.len());
                for w in rule.windows {
                    let row = crate::db::bind_all(sqlx::query(w.count), &args)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(StoreError::Db)?;
                    counts.push(col::<i64>(&row, "n")?);
                }
                let own = counts.last().copied().unwrap_or(0);
                if own == 0 {
                    break;
                }
                let unit = rule
                    .windows
                    .iter()
                    .zip(&counts)
                    .map(|(w, n)| {
                        Stmt::new(w.delete, args.clone()).expect(u64::try_from(*n).unwrap_or(0))
                    })
                    .collect();
                match self.writer.write(unit).await {
                    Ok(()) => {
                        for (w, n) in rule.windows.iter().zip(&counts) {
                            report.add(ws.as_str(), w.element, *n);
                        }
                        *budget -= own;
                        misses = 0;
                        if own < size {
                            break;
                        }
                    }
                    // Rows changed between counting and deleting: count again.
                    Err(StoreError::NotFound) if misses < BATCH_ATTEMPTS => misses += 1,
                    Err(StoreError::NotFound) => {
                        tracing::warn!(workspace = %ws, "expired rows kept changing; left to the next sweep");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Benchmark set-up: rows with placeholder ciphertexts.
const BENCH_CONTACT_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO contacts (workspace_id, id, role, subject_key_id, custom_attributes_ct, created_at, updated_at, last_seen_at) VALUES ",
    columns: 8,
};
const BENCH_KEY_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO subject_keys (workspace_id, id, ws_key_version, wrapped, created_at, owner_id) VALUES ",
    columns: 6,
};
const BENCH_CONVERSATION_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO conversations (workspace_id, id, contact_id, subject_key_id, created_at, updated_at) VALUES ",
    columns: 6,
};
const BENCH_PART_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO conversation_parts (workspace_id, id, conversation_id, author_type, author_id, body_ct, created_at) VALUES ",
    columns: 7,
};
const BENCH_EVENT_ROW: crate::db::RowInsert = crate::db::RowInsert {
    head: "INSERT INTO events (workspace_id, id, contact_id, subject_key_id, name_ct, metadata_ct, created_at) VALUES ",
    columns: 7,
};

impl Cell {
    /// Benchmark set-up only: `n` contacts of `role` last seen at `seen_at_ms`, each with a
    /// subject-key row and, with `content`, a conversation holding one message and an event,
    /// written straight into the tables in transactions of 5,000 contacts (their ciphertexts
    /// are placeholders: nothing reads them; retention only counts and deletes). Returns the
    /// contacts' ids.
    #[doc(hidden)]
    pub async fn bench_insert_contacts(
        &self,
        ws: &WorkspaceId,
        n: usize,
        role: &str,
        seen_at_ms: i64,
        content: bool,
    ) -> Result<Vec<ContactId>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = 5000.min(n - out.len());
            let mut contacts = Vec::with_capacity(k);
            let mut keys = Vec::with_capacity(k);
            let (mut conversations, mut parts, mut events) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..k {
                let id = ContactId::new();
                let skid = SubjectKeyId::new();
                let w = || Arg::Text(ws.to_string());
                contacts.push(vec![
                    w(),
                    Arg::Text(id.to_string()),
                    Arg::Text(role.to_owned()),
                    Arg::Text(skid.to_string()),
                    Arg::Bytes(vec![0u8; 40]),
                    Arg::Int(seen_at_ms),
                    Arg::Int(seen_at_ms),
                    Arg::Int(seen_at_ms),
                ]);
                keys.push(vec![
                    w(),
                    Arg::Text(skid.to_string()),
                    Arg::Int(1),
                    Arg::Bytes(vec![0u8; 60]),
                    Arg::Int(seen_at_ms),
                    Arg::Text(id.to_string()),
                ]);
                if content {
                    let cv = ConversationId::new();
                    conversations.push(vec![
                        w(),
                        Arg::Text(cv.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Text(skid.to_string()),
                        Arg::Int(seen_at_ms),
                        Arg::Int(seen_at_ms),
                    ]);
                    parts.push(vec![
                        w(),
                        Arg::Text(interlock_domain::PartId::new().to_string()),
                        Arg::Text(cv.to_string()),
                        Arg::Text("contact".to_owned()),
                        Arg::Text(id.to_string()),
                        Arg::Bytes(vec![0u8; 80]),
                        Arg::Int(seen_at_ms),
                    ]);
                    events.push(vec![
                        w(),
                        Arg::Text(interlock_domain::EventId::new().to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Text(skid.to_string()),
                        Arg::Bytes(vec![0u8; 40]),
                        Arg::Bytes(vec![0u8; 40]),
                        Arg::Int(seen_at_ms),
                    ]);
                }
                out.push(id);
            }
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(StoreError::Db)?;
            for (insert, rows) in [
                (BENCH_KEY_ROW, &keys),
                (BENCH_CONTACT_ROW, &contacts),
                (BENCH_CONVERSATION_ROW, &conversations),
                (BENCH_PART_ROW, &parts),
                (BENCH_EVENT_ROW, &events),
            ] {
                let refs: Vec<&[Arg]> = rows.iter().map(Vec::as_slice).collect();
                crate::db::insert_rows(&mut tx, insert, &refs).await?;
            }
            tx.commit().await.map_err(StoreError::Db)?;
        }
        Ok(out)
    }

    /// Benchmark set-up only: on SQLite, copy the write-ahead log into the database and empty
    /// it (a bulk set-up leaves a large log that the background checkpoint would otherwise be
    /// copying during the measurement). Nothing on PostgreSQL.
    #[doc(hidden)]
    pub async fn bench_settle(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Db)?;
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await
                .map_err(StoreError::Db)?;
        }
        Ok(())
    }

    /// Benchmark baseline: how long counting every contact of the workspace by scanning takes
    /// (what a sweep without its index would pay).
    #[doc(hidden)]
    pub async fn bench_scan_contacts(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE workspace_id = $1 AND custom_attributes_ct IS NOT NULL",
        )
        .bind(ws.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound id list is exactly `$3` … `$1002`, in order: one placeholder per id of a full
    /// batch after the workspace (`$1`) and the horizon (`$2`).
    #[test]
    fn the_id_list_has_one_placeholder_per_batch_slot() {
        let list: Vec<&str> = batch_ids!().split(", ").collect();
        let want: Vec<String> = (3..VISITOR_BATCH_MAX + 3)
            .map(|n| format!("${n}"))
            .collect();
        assert_eq!(list, want);
    }

    /// Every batch statement is scoped to the workspace and re-checks the guard.
    #[test]
    fn every_batch_statement_is_guarded() {
        for sql in [
            BATCH_ROWS,
            DELETE_KEYS,
            DELETE_SESSION_CONVERSATIONS,
            DELETE_SESSIONS,
            DELETE_TOKENS,
            DELETE_ATTACHMENTS,
            DELETE_PARTS,
            DELETE_CONVERSATIONS,
            DELETE_EVENTS,
            DELETE_CONTACTS,
        ] {
            assert!(sql.contains("workspace_id = $1"), "{sql}");
            assert!(
                sql.contains("role || '' = 'visitor' AND last_seen_at + 0 < $2 AND id IN ($3, $4,"),
                "{sql}"
            );
            assert!(sql.contains("$1002)"), "{sql}");
        }
        for rule in EXPIRING {
            for w in rule.windows {
                assert!(w.count.contains("workspace_id = $1"), "{}", w.count);
                assert!(w.delete.starts_with("DELETE FROM"), "{}", w.delete);
                assert!(
                    w.delete.contains("WHERE workspace_id = $1 AND"),
                    "{}",
                    w.delete
                );
            }
        }
    }
}
