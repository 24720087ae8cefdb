//! Offline verification of a JSON Lines activity-log export (~50 MB, entries of ~300-400
//! canonical bytes, a periodic checkpoint every 1,000 entries), against one SHA-256 pass over
//! the same bytes as the baseline. Target: verification ≥ 500 MB/s on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use interlock_crypto::audit::{
    AuditPublicKey, AuditSigningKey, Checkpoint, GENESIS, entry_hash, export_checkpoint_line,
    export_entry_line, verify_export,
};
use interlock_domain::{ActivityEntry, ActivityType, Actor, ActorType, Target};

const TARGET_BYTES: usize = 50 * 1024 * 1024;
const CHECKPOINT_EVERY: u64 = 1_000;
const WORKSPACE: &str = "ws_eu_0192f0c1a2b34c5d8e9f00112233aabb";

fn entry(seq: u64) -> ActivityEntry {
    let types = ActivityType::ALL;
    let kind = types[(seq % types.len() as u64) as usize];
    let mut metadata = serde_json::Map::new();
    metadata.insert("permission".into(), "contacts.delete".into());
    metadata.insert("count".into(), seq.into());
    ActivityEntry {
        id: format!("al_{seq:032x}"),
        kind: kind.as_str().to_owned(),
        created_at_ms: 1_730_000_000_000 + (seq as i64) * 37,
        actor: Actor::new(
            ActorType::Teammate,
            Some(format!("tm_0192f0c1a2b34c5d8e9f{:012x}", seq % 13)),
            Some(format!("198.51.100.{}", seq % 250).parse().expect("ip")),
            Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15"),
        ),
        target: Target::new("contact", format!("ct_0192f0c1a2b34c5d{seq:016x}")),
        metadata,
    }
}

fn build_export() -> (Vec<u8>, AuditPublicKey, u64) {
    let key = AuditSigningKey::generate().expect("key");
    let mut out = Vec::with_capacity(TARGET_BYTES + 4096);
    let mut prev = GENESIS;
    let mut seq = 0;
    while out.len() < TARGET_BYTES {
        seq += 1;
        let bytes = entry(seq).canonical_bytes();
        let hash = entry_hash(&prev, seq, &bytes);
        export_entry_line(seq, &prev, &hash, &bytes, &mut out);
        if seq % CHECKPOINT_EVERY == 0 {
            let cp = Checkpoint::periodic(WORKSPACE, seq, hash, 1_730_000_000_000 + seq as i64);
            export_checkpoint_line(&key.sign(&cp), &mut out);
        }
        prev = hash;
    }
    let closing = Checkpoint::export(
        WORKSPACE,
        1,
        GENESIS,
        seq,
        prev,
        1_740_000_000_000,
        seq / CHECKPOINT_EVERY,
    );
    export_checkpoint_line(&key.sign(&closing), &mut out);
    (out, key.public_key(), seq)
}

fn bench(c: &mut Criterion) {
    let (export, key, entries) = build_export();
    let summary = verify_export(&export, &key).expect("the export verifies");
    assert_eq!(summary.entries, entries);
    eprintln!(
        "export: {} bytes, {entries} entries of {} canonical bytes, {} bytes a line on average",
        export.len(),
        entry(1).canonical_bytes().len(),
        export.len() as u64 / entries
    );

    let mut group = c.benchmark_group("audit_export");
    group.throughput(Throughput::Bytes(export.len() as u64));
    group.sample_size(10);
    group.bench_function("sha256_baseline", |b| {
        b.iter(|| black_box(interlock_crypto::sha256(black_box(&export))))
    });
    group.bench_function("verify_export_jsonl", |b| {
        b.iter(|| verify_export(black_box(&export), &key).expect("verifies"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
