//! The authorization decision point (target: ≤ 10 µs median). `decide` is what every request
//! pays (a mask test); `decide_from_stored` adds decoding a stored permission list, which a
//! request pays only when its token is not in the cache. `baseline_name_set` makes the same
//! 16 decisions against a `HashSet` of permission names, the obvious alternative.

use criterion::{Criterion, criterion_group, criterion_main};
use interlock_domain::{BuiltinRole, Decision, Permission, PermissionSet, authorize};

fn bench(c: &mut Criterion) {
    let agent = BuiltinRole::Agent.permissions();
    let stored = BuiltinRole::Admin.permissions().encode();
    // Baseline: the same decision with permissions held as a set of names.
    let names: std::collections::HashSet<&'static str> =
        agent.iter().map(Permission::as_str).collect();
    let mut group = c.benchmark_group("authorize");
    group.bench_function("baseline_name_set", |b| {
        b.iter(|| {
            let held = std::hint::black_box(&names);
            for p in Permission::ALL {
                std::hint::black_box(held.contains(p.as_str()));
            }
        })
    });
    group.bench_function("decide", |b| {
        b.iter(|| {
            let held = std::hint::black_box(agent);
            for p in Permission::ALL {
                std::hint::black_box(authorize(held, *p));
            }
        })
    });
    group.bench_function("decide_from_stored", |b| {
        b.iter(|| {
            let held = PermissionSet::decode(std::hint::black_box(&stored)).expect("valid");
            assert_eq!(authorize(held, Permission::ContactsRead), Decision::Allow);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
