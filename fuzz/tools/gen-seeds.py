#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/ (except store_files, whose seeds are the
fuzz store's own files: see run-ci.sh --seeds). Needs numpy and pyarrow (any recent version):
    python3 -m venv /tmp/seedvenv && /tmp/seedvenv/bin/pip install numpy pyarrow
    /tmp/seedvenv/bin/python fuzz/tools/gen-seeds.py
Images are the repository's own test fixtures plus a few written here (BMP, TIFF, a JPEG
with an EXIF date)."""
import io, json, os, shutil, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "crates", "vitrine-clip", "tests", "fixtures", "images")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.remove(os.path.join(d, n))


# ---- image_decode -------------------------------------------------------------------------
def bmp(w, h):
    row = bytearray()
    for y in range(h):
        r = bytearray()
        for x in range(w):
            r += bytes([(x * 40) & 255, (y * 60) & 255, 128])
        r += b"\0" * ((4 - len(r) % 4) % 4)
        row += r
    hdr = struct.pack("<2sIHHI", b"BM", 54 + len(row), 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(row), 2835, 2835, 0, 0)
    return hdr + dib + bytes(row)


def tiff(w, h):
    pix = bytes(((x * 50) & 255, (y * 70) & 255, 90)[c] for y in range(h) for x in range(w) for c in range(3))
    entries = [  # tag, type, count, value
        (256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, 1, None), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pix)),
    ]
    ifd_off = 8
    ifd_len = 2 + 12 * len(entries) + 4
    bps_off = ifd_off + ifd_len
    pix_off = bps_off + 6
    out = bytearray(b"II*\0" + struct.pack("<I", ifd_off))
    out += struct.pack("<H", len(entries))
    for tag, typ, count, val in entries:
        if tag == 258:
            val = bps_off
        if tag == 273:
            val = pix_off
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, val, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, val)
    out += struct.pack("<I", 0)
    out += struct.pack("<HHH", 8, 8, 8)
    out += pix
    return bytes(out)


def exif_app1(date=b"2023:11:19 08:30:00\0", offset=b"+02:00\0", orientation=6):
    # TIFF header, IFD0 (Orientation, ExifIFD pointer), Exif IFD (DateTimeOriginal, OffsetTimeOriginal).
    le = bytearray(b"II*\0" + struct.pack("<I", 8))
    ifd0 = 8
    ifd0_len = 2 + 12 * 2 + 4
    exif_ifd = ifd0 + ifd0_len
    exif_len = 2 + 12 * 2 + 4
    data_off = exif_ifd + exif_len
    le += struct.pack("<H", 2)
    le += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    le += struct.pack("<HHII", 0x8769, 4, 1, exif_ifd)
    le += struct.pack("<I", 0)
    le += struct.pack("<H", 2)
    le += struct.pack("<HHII", 0x9003, 2, len(date), data_off)
    le += struct.pack("<HHII", 0x9011, 2, len(offset), data_off + len(date))
    le += struct.pack("<I", 0)
    le += date + offset
    body = b"Exif\0\0" + bytes(le)
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def images():
    clear("image_decode")
    for n in sorted(os.listdir(FIXTURES)):
        p = os.path.join(FIXTURES, n)
        if os.path.getsize(p) <= 24_000:
            put("image_decode", n, open(p, "rb").read())
    put("image_decode", "tiny.bmp", bmp(3, 2))
    put("image_decode", "tiny.tiff", tiff(3, 2))
    jpg = open(os.path.join(FIXTURES, "progressive.jpg"), "rb").read()
    assert jpg[:2] == b"\xff\xd8"
    put("image_decode", "exif-date.jpg", jpg[:2] + exif_app1() + jpg[2:])


# ---- npy ----------------------------------------------------------------------------------
def npys():
    import numpy as np
    clear("npy")

    def save(name, arr, version=None):
        b = io.BytesIO()
        if version:
            np.lib.format.write_array(b, arr, version=version)
        else:
            np.save(b, arr)
        put("npy", name, b.getvalue())

    save("f4-3x4.npy", np.arange(12, dtype="<f4").reshape(3, 4) / 7)
    save("f2-2x4.npy", (np.arange(8, dtype="<f2") - 3).reshape(2, 4))
    save("f4-1d.npy", np.array([0.5, -1, 2, 0], dtype="<f4"))
    save("f4-0x4.npy", np.zeros((0, 4), dtype="<f4"))
    save("f4-v2.npy", np.ones((2, 2), dtype="<f4"), version=(2, 0))
    save("f4-v3.npy", np.ones((1, 3), dtype="<f4"), version=(3, 0))
    save("f4-fortran.npy", np.asfortranarray(np.ones((2, 3), dtype="<f4")))
    save("f8.npy", np.ones((2, 2), dtype="<f8"))
    save("be-f4.npy", np.ones((2, 2), dtype=">f4"))


# ---- metadata -----------------------------------------------------------------------------
JSONL = "\n".join(json.dumps(o) for o in [
    {"id": "r0", "uri": "/p/0.jpg", "source": "products", "timestamp": "2023-11-19T08:30:00Z", "price": 1.5, "ok": True},
    {"id": "r1", "uri": "/p/1.jpg", "source": "avatars", "timestamp": 1700382600, "price": 3, "caption": "a cat"},
    {"id": 2, "source": "products", "day": "2023-11-20", "price": None, "caption": "x"},
    {"id": "r3", "timestamp": 1700382600.75, "tags": ["no"]},
]) + "\nnot json\n\n"
CSV = ("id,uri,source,timestamp,price,count,ok,caption\n"
       "r0,/p/0.jpg,products,2023-11-19T08:30:00Z,1.5,3,true,hello\n"
       "r1,/p/1.jpg,avatars,1700382600,,4,false,\"quoted, with comma\"\n"
       "r2,,products,2023-11-20,2e3,-1,,\n")


def parquets():
    import pyarrow as pa, pyarrow.parquet as pq
    t = pa.table({
        "id": pa.array(["r0", "r1", None]),
        "uri": pa.array(["/p/0.jpg", "/p/1.jpg", "/p/2.jpg"], type=pa.large_string()),
        "source": pa.array(["products", "avatars", "products"]).dictionary_encode(),
        "timestamp": pa.array([1700382600000, None, 1700000000000], type=pa.timestamp("ms", tz="UTC")),
        "day": pa.array([19680, 19681, None], type=pa.date32()),
        "i8": pa.array([1, -2, None], type=pa.int8()),
        "u64": pa.array([1, 2**63 + 5, 3], type=pa.uint64()),
        "f32": pa.array([0.5, None, -1], type=pa.float32()),
        "f64": pa.array([1.5, 2.5, float("nan")]),
        "ok": pa.array([True, False, None]),
    })
    out = []
    for comp in ["snappy", "zstd", "none"]:
        b = io.BytesIO()
        pq.write_table(t, b, compression=comp, row_group_size=2)
        out.append((comp, b.getvalue()))
    b = io.BytesIO()
    pq.write_table(pa.table({"id": ["a"], "vec": pa.array([[1.0, 2.0]])}), b)
    out.append(("list-column", b.getvalue()))
    b = io.BytesIO()
    pq.write_table(pa.table({"ts": pa.array([1, 2], type=pa.timestamp("ns")), "s": pa.array(["x", "y"], type=pa.string_view())}), b)
    out.append(("ns-view", b.getvalue()))
    return out


def metadata():
    clear("metadata")
    put("metadata", "rows.jsonl", b"\x00" + JSONL.encode())
    put("metadata", "rows.csv", b"\x01" + CSV.encode())
    put("metadata", "ragged.csv", b"\x01" + b"id,price\nr0,1\nr1,2,3\n")
    for name, data in parquets():
        put("metadata", name + ".parquet", b"\x02" + data)


# ---- index_manifest -----------------------------------------------------------------------
def manifests():
    clear("index_manifest")
    csv = ("uri,source,timestamp,id,caption\n"
           "a.jpg,products,2023-11-19T08:30:00Z,,hello\n"
           "sub/b.png,,1700000000,b1,x\n"
           "file://a.jpg,avatars,2023-11-20,,\n"
           "missing.jpg,avatars,,,\n"
           "https://example.invalid/y.jpg,products,,,\n"
           "sub,products,,,\n"
           "a.jpg,bad\x01source,99999999999999,,\n")
    put("index_manifest", "m.csv", b"\x00" + csv.encode())
    put("index_manifest", "m-source.csv", b"\x02" + b"uri\na.jpg\nsub/b.png\n")
    jl = "\n".join(json.dumps(o) for o in [
        {"uri": "a.jpg", "source": "products", "timestamp": 1700000000, "price": 3.5},
        {"uri": "sub/b.png", "day": "2023-11-19", "id": "x1"},
        {"uri": "/dev/null", "source": "products"},
        {"source": "products"},
        {"uri": "a.jpg", "arrival": 3},
    ]) + "\n{torn"
    put("index_manifest", "m.jsonl", b"\x01" + jl.encode())
    put("index_manifest", "m-source.jsonl", b"\x03" + b'{"uri": "a.jpg"}\n{"uri": "sub/b.png", "timestamp": "2023-11-19"}\n')


# ---- filter -------------------------------------------------------------------------------
FILTERS = [
    'source == "avatars" and price > 100',
    'source == "avatars" && price > 200',
    "source in [\"products\", 'avatars']",
    'source not in ["avatars"]',
    'not (price < 100 or city == "Beijing")',
    'city like "Hang%" and verified == true',
    'city like "H_ngzh%u"',
    'city not like "%zhou"',
    "price >= 150 and price <= 150.0",
    "count != -5 || !(count > 1_000)",
    'day >= "2023-11-19" and day < "2023-12-01"',
    "timestamp >= 1700000000 and timestamp < 1.7e9",
    'id in [] or uri == "/x.jpg"',
    'day like "2023-11-%" and source != "x\\"y"',
    "true and not false",
    "(((price > 1)))",
]


def filters():
    clear("filter")
    for i, f in enumerate(FILTERS):
        put("filter", f"{i:02}", f)


# ---- http_bodies --------------------------------------------------------------------------
ROUTES = ["search", "sweep", "classify", "knn", "metadata", "login", "retain", "holds", "release",
          "delete", "watchlists"]
GET = len(ROUTES)
MULTIPART = GET + 1


def http():
    clear("http_bodies")
    r = {n: i for i, n in enumerate(ROUTES)}
    bodies = [
        ("search", {"collection": "vectors", "vector": [1, 0, 0, 0], "k": 3}),
        ("search", {"collection": "vectors", "like": "r1", "threshold": 0.5, "fields": ["caption"],
                    "sources": ["products"], "from": "2023-11-19", "to": "2023-11-20", "filter": "price > 2"}),
        ("search", {"collection": "vectors", "vector": [0.1, 0.2, 0.3, 0.4], "last": "30d", "k": 2}),
        ("search", {"collection": "vectors", "text": "a cat", "not": ["dog"], "add": ["0.5:sunset"]}),
        ("sweep", {"collection": "vectors", "prompts": ["a cat"], "threshold": 0.2}),
        ("classify", {"collection": "vectors", "labels": ["cat", "dog"], "templates": ["a photo of a {}"]}),
        ("knn", {"embedding_input": [1, 0, 0, 0], "modality": "image", "num_images": 3, "indice_name": "vectors",
                 "deduplicate": True, "use_mclip": False, "aesthetic_score": "9"}),
        ("metadata", {"ids": [0, 1, "r2"], "indice_name": "vectors"}),
        ("login", {"token": "secret"}),
        ("retain", {"older_than": "400d", "dry_run": True}),
        ("retain", {"before": "2023-11-20", "source": "avatars"}),
        ("holds", {"source": "products", "from": "2023-11-19", "to": "2023-11-21", "reason": "case", "by": "me"}),
        ("release", {"reason": "closed", "by": "me"}),
        ("delete", {"ids": ["r1", "r2", "nope"]}),
        ("delete", {"sources": ["avatars"], "filter": "count > 3"}),
        ("watchlists", {"name": "w2", "likes": ["r3"], "threshold": 0.4, "by": "me", "since": "2023-11-19"}),
    ]
    for i, (route, body) in enumerate(bodies):
        put("http_bodies", f"{i:02}-{route}", bytes([r[route]]) + json.dumps(body).encode())
    gets = ["/api/collections", "/api/collections/vectors", "/api/collections/vectors/partitions",
            "/api/collections/vectors/rows/r1?vector=true", "/api/collections/vectors/holds",
            "/api/collections/vectors/watchlists", "/api/collections/vectors/watchlists/w/alerts?after=0&limit=10",
            "/api/collections/vectors/thumbnail/r1", "/indices-list", "/api/health", "/openapi.json"]
    for i, g in enumerate(gets):
        put("http_bodies", f"get-{i:02}", bytes([GET]) + g.encode())
    mp = ("--fuzz\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\nvectors\r\n"
          "--fuzz\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n3\r\n"
          "--fuzz\r\nContent-Disposition: form-data; name=\"like\"\r\n\r\nr1\r\n--fuzz--\r\n")
    put("http_bodies", "multipart-like", bytes([MULTIPART]) + mp.encode())
    mp_img = (b"--fuzz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.bmp\"\r\n"
              b"Content-Type: image/bmp\r\n\r\n" + bmp(2, 2) + b"\r\n--fuzz--\r\n")
    put("http_bodies", "multipart-image", bytes([MULTIPART]) + mp_img)


if __name__ == "__main__":
    images()
    npys()
    metadata()
    manifests()
    filters()
    http()
    for t in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, t)
        files = [f for f in os.listdir(d) if f.startswith("seed-")]
        print(f"{t}: {len(files)} seeds, {sum(os.path.getsize(os.path.join(d, f)) for f in files)} bytes")
