//! Messenger identity verification: `user_hash` and user JWT checks, against one bare
//! HMAC-SHA-256 of the same message as the baseline. Targets: user_hash ≤ 1 µs, JWT ≤ 5 µs.

use aws_lc_rs::hmac;
use criterion::{Criterion, criterion_group, criterion_main};
use interlock_crypto::identity::{verify_jwt, verify_user_hash};
use interlock_crypto::{JwtPolicy, SecretValue, VerificationSecret};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

fn bench(c: &mut Criterion) {
    let value = SecretValue::generate().expect("rng");
    let secrets = [VerificationSecret::new("ms_bench", &value)];
    let user_id = "user-0192f0c1-a2b3-4c5d";
    let hash = value.user_hash(user_id);
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"user_id": user_id, "email": "a@example.com", "iat": now, "exp": now + 3600}),
        &EncodingKey::from_secret(value.expose().as_bytes()),
    )
    .expect("jwt");
    let raw = hmac::Key::new(hmac::HMAC_SHA256, value.expose().as_bytes());

    let mut group = c.benchmark_group("identity");
    group.bench_function("hmac_sha256_baseline", |b| {
        b.iter(|| std::hint::black_box(hmac::sign(&raw, std::hint::black_box(user_id).as_bytes())))
    });
    group.bench_function("user_hash_verify", |b| {
        b.iter(|| {
            assert!(verify_user_hash(&secrets, std::hint::black_box(user_id), &hash).is_some())
        })
    });
    group.bench_function("jwt_verify", |b| {
        b.iter(|| {
            assert!(
                verify_jwt(
                    &secrets,
                    std::hint::black_box(&token),
                    now,
                    JwtPolicy::default()
                )
                .is_ok()
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
