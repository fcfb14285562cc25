//! Renders sample timelines (`engine::timeline::svg`) to PNG in headless Chromium and checks
//! that something was drawn. Skipped, with a message, when `/usr/bin/chromium` is missing.
//!
//! The SVGs and PNGs stay in `target/tmp/timeline/` to be looked at (docs/timeline.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::timeline::{Bar, Lane, Outcome, colour, svg};

const CHROMIUM: &str = "/usr/bin/chromium";

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

const TEXTS: &[&str] = &[
    "sort -u words.txt > sorted.txt",
    "grep -c 'a&b' <in.txt",
    "cat \"$f\" | tr A-Z a-z | uniq -c",
    "echo 'it'\"'\"'s' >> log",
    "find . -name '*.c' -exec wc -l {} +",
];

/// A run of `units` units on `slots` slots over about `secs` seconds: the shell runs some
/// units itself, the slots speculate the others, a few speculations are discarded.
fn sample(units: usize, slots: usize, secs: f64, seed: u64) -> Vec<Bar> {
    let mut r = Rng(seed | 1);
    let mut bars = vec![];
    let unit = secs / units as f64 * slots.max(1) as f64 * 0.8;
    let mut free = vec![0.0; slots];
    let mut shell = 0.0;
    for u in 0..units {
        let text = TEXTS[u % TEXTS.len()].to_string();
        let d = unit * (0.3 + 1.4 * r.next());
        if slots == 0 || r.next() < 0.2 {
            let start = shell;
            shell += d * 0.5;
            bars.push(Bar {
                lane: Lane::Shell,
                start,
                end: shell,
                outcome: Outcome::Direct,
                label: format!("u{u}"),
                text,
                why: None,
            });
            continue;
        }
        let k = (0..slots)
            .min_by(|&a, &b| free[a].partial_cmp(&free[b]).unwrap())
            .unwrap();
        let start = free[k];
        let end = start + d;
        free[k] = end + unit * 0.05;
        let discarded = r.next() < 0.15;
        bars.push(Bar {
            lane: Lane::Slot(k),
            start,
            end,
            outcome: if discarded {
                Outcome::Discarded
            } else {
                Outcome::Committed
            },
            label: format!("u{u}[{}]", u % 3),
            text: text.clone(),
            why: discarded.then(|| "read \"a<b\" written by u2 & u3".to_string()),
        });
        if discarded {
            let start = shell.max(end);
            shell = start + d * 0.8;
            bars.push(Bar {
                lane: Lane::Shell,
                start,
                end: shell,
                outcome: Outcome::Direct,
                label: format!("u{u}"),
                text,
                why: Some("re-run after a discarded speculation".into()),
            });
        } else {
            shell = shell.max(end) + unit * 0.02;
        }
    }
    bars
}

// ---------------------------------------------------------------------------------------------
// A minimal PNG reader (8-bit RGB/RGBA, not interlaced) with its inflate, to count colours.

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    n: u32,
}

impl Bits<'_> {
    fn bits(&mut self, need: u32) -> u32 {
        while self.n < need {
            let b = *self.data.get(self.pos).expect("inflate: out of input") as u32;
            self.pos += 1;
            self.buf |= b << self.n;
            self.n += 8;
        }
        let v = self.buf & ((1u32 << need) - 1);
        self.buf >>= need;
        self.n -= need;
        v
    }
}

/// A canonical Huffman code: how many codes of each length, symbols in code order.
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut counts = [0u16; 16];
        for &l in lengths {
            counts[l as usize] += 1;
        }
        counts[0] = 0;
        let mut offs = [0u16; 16];
        for l in 1..15 {
            offs[l + 1] = offs[l] + counts[l];
        }
        let mut symbols = vec![0; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbols[offs[l as usize] as usize] = sym as u16;
                offs[l as usize] += 1;
            }
        }
        Huffman { counts, symbols }
    }

    fn decode(&self, b: &mut Bits) -> u16 {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= b.bits(1) as i32;
            let count = self.counts[len] as i32;
            if code - count < first {
                return self.symbols[(index + code - first) as usize];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        panic!("inflate: bad code");
    }
}

/// Decompresses a zlib stream.
fn inflate(zlib: &[u8]) -> Vec<u8> {
    const LBASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let mut b = Bits {
        data: &zlib[2..],
        pos: 0,
        buf: 0,
        n: 0,
    };
    let mut out = Vec::new();
    loop {
        let last = b.bits(1) == 1;
        match b.bits(2) {
            0 => {
                b.buf = 0;
                b.n = 0;
                let len = u16::from_le_bytes([b.data[b.pos], b.data[b.pos + 1]]) as usize;
                b.pos += 4;
                out.extend_from_slice(&b.data[b.pos..b.pos + len]);
                b.pos += len;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Huffman::new(&l), Huffman::new(&[5; 30]))
                } else {
                    let nlen = b.bits(5) as usize + 257;
                    let ndist = b.bits(5) as usize + 1;
                    let ncode = b.bits(4) as usize + 4;
                    let mut cl = [0u8; 19];
                    for &i in &ORDER[..ncode] {
                        cl[i] = b.bits(3) as u8;
                    }
                    let clh = Huffman::new(&cl);
                    let mut lengths = Vec::with_capacity(nlen + ndist);
                    while lengths.len() < nlen + ndist {
                        let sym = clh.decode(&mut b);
                        let (val, rep) = match sym {
                            0..=15 => (sym as u8, 1),
                            16 => (*lengths.last().unwrap(), 3 + b.bits(2)),
                            17 => (0, 3 + b.bits(3)),
                            _ => (0, 11 + b.bits(7)),
                        };
                        lengths.extend(std::iter::repeat_n(val, rep as usize));
                    }
                    (
                        Huffman::new(&lengths[..nlen]),
                        Huffman::new(&lengths[nlen..]),
                    )
                };
                loop {
                    let sym = lit.decode(&mut b) as usize;
                    if sym < 256 {
                        out.push(sym as u8);
                    } else if sym == 256 {
                        break;
                    } else {
                        let i = sym - 257;
                        let len = LBASE[i] as usize + b.bits(LEXT[i] as u32) as usize;
                        let d = dist.decode(&mut b) as usize;
                        let back = DBASE[d] as usize + b.bits(DEXT[d] as u32) as usize;
                        let from = out.len() - back;
                        for k in 0..len {
                            out.push(out[from + k]);
                        }
                    }
                }
            }
            _ => panic!("inflate: bad block type"),
        }
        if last {
            return out;
        }
    }
}

/// A decoded image: width, height, RGB pixels.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn decode_png(png: &[u8]) -> Image {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap()) as usize;
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut bpp) = (0, 0, 0);
    while pos + 8 <= png.len() {
        let len = be(&png[pos..pos + 4]);
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                (width, height) = (be(&data[0..4]), be(&data[4..8]));
                assert_eq!(data[8], 8, "bit depth");
                assert_eq!(data[12], 0, "interlaced");
                bpp = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("PNG colour type {t}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let raw = inflate(&idat);
    let stride = width * bpp;
    assert_eq!(raw.len(), height * (stride + 1), "PNG data size");
    let mut prev = vec![0u8; stride];
    let mut rgb = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1) {
        let mut cur = row[1..].to_vec();
        for i in 0..stride {
            let a = if i >= bpp { cur[i - bpp] as i16 } else { 0 };
            let (b, c) = (
                prev[i] as i16,
                if i >= bpp { prev[i - bpp] as i16 } else { 0 },
            );
            let pred = match row[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[i] = cur[i].wrapping_add(pred as u8);
        }
        rgb.extend(cur.chunks(bpp).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    Image { width, height, rgb }
}

/// How many pixels are within a small distance of `hex` (`#RRGGBB`).
fn count_colour(img: &Image, hex: &str) -> usize {
    let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as i32;
    let want = [c(1), c(3), c(5)];
    img.rgb
        .iter()
        .filter(|p| (0..3).all(|k| (p[k] as i32 - want[k]).abs() <= 8))
        .count()
}

// ---------------------------------------------------------------------------------------------

/// Renders `svg` at `width`×`height` and returns the PNG.
fn render(name: &str, svg: &str, width: u32, height: u32) -> Vec<u8> {
    let dir = out_dir();
    let svg_path = dir.join(format!("{name}.svg"));
    let png_path = dir.join(format!("{name}.png"));
    std::fs::write(&svg_path, svg).unwrap();
    let _ = std::fs::remove_file(&png_path);
    let profile = dir.join(format!("profile-{name}"));
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(&svg_path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let png = std::fs::read(&png_path).unwrap_or_else(|e| {
        panic!(
            "chromium made no {} ({e}): {}\n{}",
            png_path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("timeline: rendered {}", png_path.display());
    png
}

/// The `height` attribute of the root element.
fn svg_height(s: &str) -> u32 {
    let i = s.find(" height=\"").unwrap() + 9;
    let h: f64 = s[i..i + s[i..].find('"').unwrap()].parse().unwrap();
    h.ceil() as u32
}

#[test]
fn timeline_renders_in_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("timeline: SKIPPED, {CHROMIUM} not found (apt-get install chromium)");
        return;
    }
    let blank = r##"<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="400"><rect width="1200" height="400" fill="#FFFFFF"/></svg>"##;
    let blank_png = render("blank", blank, 1200, 400);
    let cases = [
        (
            "one",
            svg(
                &[Bar {
                    lane: Lane::Shell,
                    start: 0.002,
                    end: 0.009,
                    outcome: Outcome::Direct,
                    label: "u0".into(),
                    text: "echo <hello> & 'bye'".into(),
                    why: None,
                }],
                4,
                0.012,
                "one unit, 12 ms",
            ),
        ),
        (
            "small",
            svg(
                &sample(40, 4, 0.4, 7),
                4,
                0.0,
                "40 units, 4 slots <sample & test>",
            ),
        ),
        (
            "many",
            svg(&sample(2000, 8, 30.0, 11), 8, 0.0, "2,000 units, 8 slots"),
        ),
        (
            "wide",
            svg(&sample(300, 32, 5.0, 13), 32, 0.0, "300 units, 32 slots"),
        ),
    ];
    let blank = decode_png(&blank_png);
    assert_eq!((blank.width, blank.height), (1200, 400));
    assert_eq!(
        count_colour(&blank, "#FFFFFF"),
        1200 * 400,
        "blank render is white"
    );
    for (name, s) in cases {
        let h = svg_height(&s);
        let img = decode_png(&render(name, &s, 1200, h));
        assert_eq!((img.width, img.height), (1200, h as usize), "{name}");
        let white = count_colour(&img, "#FFFFFF");
        let [committed, discarded, direct] =
            [Outcome::Committed, Outcome::Discarded, Outcome::Direct]
                .map(|o| count_colour(&img, colour(o)));
        eprintln!(
            "timeline: {name}: {white} white, {committed} committed, {discarded} discarded, \
             {direct} direct pixels"
        );
        // Every outcome present is drawn (the legend alone has ~150 pixels of each), the
        // page is mostly background.
        let legend = 100;
        assert!(direct > legend, "{name}: no shell bars drawn");
        if name != "one" {
            assert!(committed > 10 * legend, "{name}: no committed bars drawn");
            assert!(discarded > 2 * legend, "{name}: no discarded bars drawn");
        }
        assert!(white > img.rgb.len() / 4, "{name}: {white} white pixels");
    }
}
