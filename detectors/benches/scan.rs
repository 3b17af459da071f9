//! Cost of the PII scanner per column value: it runs on every value of
//! every row the proxy inspects, so it must stay well under a microsecond
//! for typical values. Three shapes: a short number (the commonest value),
//! 200 bytes of mixed Chinese/ASCII free text with nothing sensitive (the
//! common case for text columns), and free text holding two findings.
//! Then the cells of one row of the synthetic citizens table
//! (tests/fixtures/citizens.sql, which `bench/stream.sh` streams), one
//! call per cell as the proxy makes them: each cell alone, and the whole
//! row (8 calls) as `citizen_row`.
//! Run: `cargo bench -p danxia-detectors --bench scan`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use danxia_detectors::{Counts, Scanner};

const SHORT_NUMBER: &str = "13812345678";

/// 200 bytes, no sensitive value (but dates, a time, a price, an order id,
/// a version).
const TEXT_CLEAN: &str = "客户于2024-03-15在窗口办理业务, order SO20240315-0042, \
    amount 1280.50 yuan; status: done. 备注: 已电话回访, 满意度 5/5, \
    下次复核时间 2024-04-01 09:30 (v2.3.1). ref#A7F3";

/// Free text with an ID number and a phone number.
const TEXT_TWO_PII: &str = "申请人张三，身份证号11010519491231002X，联系电话: 138-1234-5678，\
    地址见附件。status ok";

/// One row of `danxia_citizens`: id, name, id_number, phone, bank_card
/// (19 digits, Luhn), email, address, note. Five findings: the ID number,
/// phone, card and e-mail; nothing in the others.
const CITIZEN_ROW: [(&str, &str); 8] = [
    ("id", "734215"),
    ("name", "欧阳欣怡"),
    ("id_number", "440305198706123456"),
    ("phone", "13812345678"),
    ("bank_card", "6222021234567890128"),
    ("email", "ouyangxinyi.734215@mail.example.com"),
    ("address", "广东省深圳市南山区滨江大道123号12栋3单元1502室"),
    ("note", "老客户，服务满意度高（第15批导入）"),
];

fn bench(c: &mut Criterion) {
    let scanner = Scanner::all();
    let mut group = c.benchmark_group("scan");
    let cells = CITIZEN_ROW
        .iter()
        .map(|&(column, value)| (format!("cell_{column}"), value));
    let values = [
        ("short_number".to_owned(), SHORT_NUMBER),
        ("text_200b_clean".to_owned(), TEXT_CLEAN),
        ("text_two_pii".to_owned(), TEXT_TWO_PII),
    ];
    for (name, value) in values.into_iter().chain(cells) {
        let mut check = Counts::new();
        scanner.scan(value.as_bytes(), &mut check);
        eprintln!(
            "{name}: {} bytes, found {:?}",
            value.len(),
            check.iter().collect::<Vec<_>>()
        );
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut counts = Counts::new();
                scanner.scan(black_box(value.as_bytes()), &mut counts);
                counts
            })
        });
    }

    let row_bytes: usize = CITIZEN_ROW.iter().map(|(_, v)| v.len()).sum();
    let mut check = Counts::new();
    for (_, value) in CITIZEN_ROW {
        scanner.scan(value.as_bytes(), &mut check);
    }
    eprintln!(
        "citizen_row: {row_bytes} bytes, found {:?}",
        check.iter().collect::<Vec<_>>()
    );
    group.throughput(Throughput::Bytes(row_bytes as u64));
    group.bench_function("citizen_row", |b| {
        b.iter(|| {
            let mut counts = Counts::new();
            for (_, value) in black_box(&CITIZEN_ROW) {
                scanner.scan(value.as_bytes(), &mut counts);
            }
            counts
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
