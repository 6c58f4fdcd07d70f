//! Exposition parser throughput on the shared corpus: MB/s (`parse_bytes`) and
//! samples/s (`parse_samples`) per file.
//!
//! The corpus is read from `$CARGO_MANIFEST_DIR/../shared/corpus/exposition`, or
//! from `HOMEOSTAT_CORPUS_DIR` when set.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use homeostat::exposition::{parse, Format};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = match std::env::var_os("HOMEOSTAT_CORPUS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/exposition"),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("SKIPPED: corpus not found at {}", dir.display());
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    files.sort();
    files
}

fn bench_parse(c: &mut Criterion) {
    let files = corpus();

    let mut bytes = c.benchmark_group("parse_bytes");
    for (name, body) in &files {
        bytes.throughput(Throughput::Bytes(body.len() as u64));
        bytes.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| parse(black_box(body), Format::Text004))
        });
    }
    bytes.finish();

    let mut samples = c.benchmark_group("parse_samples");
    for (name, body) in &files {
        let n = match parse(body, Format::Text004) {
            Ok(s) => s.len() as u64,
            Err(e) => {
                eprintln!("{name}: {e}; not benchmarked");
                continue;
            }
        };
        samples.throughput(Throughput::Elements(n));
        samples.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| parse(black_box(body), Format::Text004))
        });
    }
    samples.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
