//! Field encryption against the machine's raw AES-256-GCM speed for 1 KiB values.
//! `raw` seals with a fixed key and nonce and no associated-data building; `field` is the path
//! the store takes: build the associated data, draw a random nonce, seal, allocate the output.

use aws_lc_rs::aead::{AES_256_GCM, Aad as LcAad, LessSafeKey, Nonce, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use interlock_crypto::{Aad, AeadKey, KeyMaterial};

fn bench(c: &mut Criterion) {
    let value = vec![0x42u8; 1024];
    let mut group = c.benchmark_group("aes256gcm_1KiB");
    group.throughput(Throughput::Bytes(value.len() as u64));

    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let mut buf = value.clone();
    group.bench_function("raw", |b| {
        b.iter(|| {
            let tag = raw_key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0u8; 12]),
                    LcAad::empty(),
                    &mut buf,
                )
                .expect("seal");
            std::hint::black_box(&tag);
        })
    });

    let key = AeadKey::new(&KeyMaterial::generate().expect("rng")).expect("key");
    group.bench_function("field", |b| {
        b.iter(|| {
            let aad = Aad::new(
                "ws_us_0192f0c1a2b34c5d8e9f001122334455",
                "parts",
                "pt_0192f0c1a2b34c5d8e9f001122334455",
                "body",
                "sk_0192f0c1a2b34c5d8e9f001122334455",
            );
            std::hint::black_box(key.seal(&aad, &value).expect("seal"));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
