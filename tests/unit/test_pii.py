"""The personal-data recogniser on a generated, labelled corpus.

Every value is generated (fake): valid and invalid NIR and IBAN keys, every
phone notation, emails, addresses, and look-alikes (order numbers, dates,
SIRET, amounts, IP addresses, postcodes without a street). Assertions print
counts only, never a generated value.
"""

from __future__ import annotations

import io
import random
import string
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isoloir.exposure import pii

SEED = 20270314
STREETS = ["rue", "avenue", "boulevard", "place", "chemin", "allée", "impasse", "route", "quai"]
NAMES = ["des Lilas", "Jean Jaurès", "de la Gare", "du 8 Mai 1945", "Victor Hugo", "des Écoles"]
TOWNS = ["Exempleville", "Paris", "Lyon", "Saint-Fictif", "Modèle-sur-Mer"]
CONTEXTS = [
    "{v}",
    "Contact : {v}",
    "Dupont;Jeanne;{v};oui",
    "{v}\tMartin\tPaul",
    '"Durand","{v}","2024-06-12"',
    "note libre avant {v} et après",
]


def nir_key(body13: str) -> int:
    dept = body13[5:7]
    digits = body13[:5] + {"2A": "19", "2B": "18"}.get(dept, dept) + body13[7:]
    return 97 - int(digits) % 97


def gen_nir(rng: random.Random, *, valid: bool) -> str:
    sex = rng.choice("12")
    year = f"{rng.randint(0, 99):02d}"
    month = f"{rng.randint(1, 12):02d}"
    dept = rng.choice([f"{rng.randint(1, 95):02d}", "2A", "2B", "75", "97"])
    commune = f"{rng.randint(1, 999):03d}"
    order = f"{rng.randint(1, 999):03d}"
    body = sex + year + month + dept + commune + order
    key = nir_key(body)
    if not valid:
        key = (key + rng.randint(1, 96)) % 97 or 97
        if key == nir_key(body):
            key = key % 97 + 1
    k = f"{key:02d}"
    if rng.random() < 0.5:
        return body + k
    return f"{sex} {year} {month} {dept} {commune} {order} {k}"


def iban_check(country: str, bban: str) -> str:
    raw = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in raw))
    return f"{98 - num % 97:02d}"


def gen_iban(rng: random.Random, *, valid: bool) -> str:
    country, length = rng.choice([("FR", 27), ("DE", 22), ("BE", 16), ("ES", 24)])
    bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    check = iban_check(country, bban)
    if not valid:
        check = f"{(int(check) + rng.randint(1, 50)) % 97:02d}"
        if check == iban_check(country, bban):
            check = f"{(int(check) + 1) % 97:02d}"
    value = country + check + bban
    if rng.random() < 0.5:
        return value
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def gen_phone(rng: random.Random) -> str:
    first = rng.choice("123456789")
    rest = [f"{rng.randint(0, 99):02d}" for _ in range(4)]
    notation = rng.randrange(8)
    if notation == 0:
        return f"+33 {first} " + " ".join(rest)
    if notation == 1:
        return f"+33{first}" + "".join(rest)
    if notation == 2:
        return f"0033{first}" + "".join(rest)
    if notation == 3:
        return f"0{first} " + " ".join(rest)
    if notation == 4:
        return f"0{first}." + ".".join(rest)
    if notation == 5:
        return f"0{first}-" + "-".join(rest)
    if notation == 6:
        return f"+33 (0){first} " + " ".join(rest)
    return f"0{first}" + "".join(rest)


def gen_email(rng: random.Random) -> str:
    user = rng.choice(["jeanne.dupont", "p.martin", "contact+campagne", "m_durand75", "a-b.c"])
    domain = rng.choice(["example.org", "mairie-exempleville.example", "mail.example.fr"])
    return f"{user}{rng.randint(1, 999)}@{domain}"


def gen_address(rng: random.Random) -> str:
    number = f"{rng.randint(1, 250)}{rng.choice(['', '', ' bis', ' ter'])}"
    street = f"{number} {rng.choice(STREETS)} {rng.choice(NAMES)}"
    postcode = f"{rng.randint(1, 95):02d}{rng.randint(0, 999):03d}"
    sep = rng.choice([", ", " ", ";", "\t"])
    return f"{street}{sep}{postcode} {rng.choice(TOWNS)}"


def gen_lookalike(rng: random.Random) -> str:
    kind = rng.randrange(14)
    if kind == 0:
        return f"CMD-{rng.randint(2020, 2027)}-{rng.randint(0, 999999):06d}"
    if kind == 1:
        day = f"{rng.randint(2020, 2027)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        return f"Commande n° {day}-{rng.randint(1, 9999):04d}"
    if kind == 2:
        return f"{rng.randint(2020, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == 3:
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2020, 2027)}"
    if kind == 4:
        return f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(2020, 2027)}"
    if kind == 5:  # SIRET
        siren = " ".join(str(rng.randint(100, 999)) for _ in range(3))
        return f"{siren} {rng.randint(10000, 99999)}"
    if kind == 6:
        return f"{rng.randint(1, 999)} {rng.randint(100, 999)},{rng.randint(0, 99):02d} €"
    if kind == 7:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == 8:  # a postcode with no street
        return f"Réunion à {rng.choice(TOWNS)} ({rng.randint(1, 95):02d}{rng.randint(0, 999):03d})"
    if kind == 9:  # nine or eleven digits: not a French number
        digits = "".join(rng.choice(string.digits) for _ in range(rng.choice([8, 10])))
        return f"0{digits}"
    if kind == 10:
        return f"FAC{rng.randint(10**9, 10**10 - 1)}{rng.randint(10, 99)}"
    if kind == 11:
        day = f"{rng.randint(2020, 2027)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        return f"{day}{rng.randint(0, 235959):06d}"
    if kind == 12:
        return gen_nir(rng, valid=False)
    return gen_iban(rng, valid=False)


GENERATORS = {
    "phone": gen_phone,
    "email": gen_email,
    "address": gen_address,
    "nir": lambda rng: gen_nir(rng, valid=True),
    "iban": lambda rng: gen_iban(rng, valid=True),
}


def corpus(n_per_kind: int = 400, n_negative: int = 2000) -> list[tuple[str, str | None]]:
    rng = random.Random(SEED)
    items: list[tuple[str, str | None]] = []
    for kind, gen in GENERATORS.items():
        for _ in range(n_per_kind):
            items.append((rng.choice(CONTEXTS).format(v=gen(rng)), kind))
    for _ in range(n_negative):
        items.append((rng.choice(CONTEXTS).format(v=gen_lookalike(rng)), None))
    rng.shuffle(items)
    return items


def test_precision_and_recall_on_generated_corpus() -> None:
    tp = fp = fn = 0
    per_kind: dict[str, list[int]] = {k: [0, 0, 0] for k in pii.KINDS}  # tp, fp, fn
    for text, label in corpus():
        found = set(pii.analyse_text(text).kinds)
        if label is not None:
            if label in found:
                tp += 1
                per_kind[label][0] += 1
            else:
                fn += 1
                per_kind[label][2] += 1
        for kind in found - {label}:
            fp += 1
            per_kind[kind][1] += 1
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    assert precision >= 0.98, (precision, per_kind)
    assert recall >= 0.98, (recall, per_kind)
    for kind, (ktp, kfp, kfn) in per_kind.items():
        assert ktp / max(ktp + kfp, 1) >= 0.95, (kind, ktp, kfp, kfn)
        assert ktp / max(ktp + kfn, 1) >= 0.95, (kind, ktp, kfp, kfn)


@pytest.mark.parametrize(
    "notation",
    [
        "+33 6 12 34 56 78",
        "+33612345678",
        "0033612345678",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "0612345678",
        "+33 (0)6 12 34 56 78",
    ],
)
def test_every_phone_notation(notation: str) -> None:
    assert pii.analyse_text(f"tel;{notation};x").counts == {"phone": 1}


def test_nir_corsica_and_key() -> None:
    body = "1850" + "5" + "2A" + "004" + "123"
    assert len(body) == 13
    key = nir_key(body)
    assert pii.nir_key_valid(body + f"{key:02d}")
    assert not pii.nir_key_valid(body + f"{(key % 97) + 1:02d}")
    body_b = "2991" + "2" + "2B" + "100" + "001"
    assert pii.nir_key_valid(body_b + f"{nir_key(body_b):02d}")


@given(st.integers(min_value=0, max_value=10**22 - 1))
@settings(max_examples=200, deadline=None)
def test_iban_checksum_property(n: int) -> None:
    bban = f"{n:023d}"
    good = "FR" + iban_check("FR", bban) + bban
    assert pii.iban_valid(good)
    bad_check = f"{(int(good[2:4]) + 1) % 97:02d}"
    assert not pii.iban_valid("FR" + bad_check + bban)


def test_report_holds_counts_not_values(tmp_path: Path) -> None:
    rows = ["nom;prenom;email;telephone"] + [
        f"Nom{i};Prenom{i};p{i}@example.org;06 12 34 56 {i:02d}" for i in range(200)
    ]
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(rows) + "\n")
    report = pii.sample_file(path)
    assert report is not None
    assert report.sampled_bytes == pii.SAMPLE_BYTES
    assert report.counts["email"] == report.counts["phone"] == report.records_sampled
    assert 150 <= report.estimated_records <= 260
    dumped = repr(report) + repr(report.to_evidence())
    assert "@" not in dumped and "06 12" not in dumped


def _zip(path: Path, member: str, xml: str) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(member, xml)


def test_xlsx_and_ods_sampled_through_bounded_read(tmp_path: Path) -> None:
    strings = "".join(
        f"<si><t>p{i}@example.org</t></si><si><t>0612345{i:03d}</t></si>" for i in range(5000)
    )
    _zip(tmp_path / "a.xlsx", "xl/sharedStrings.xml", f"<sst>{strings}</sst>")
    rep = pii.sample_file(tmp_path / "a.xlsx")
    assert rep is not None and rep.source == "xlsx"
    assert set(rep.kinds) == {"email", "phone"}
    assert rep.sampled_bytes == pii.SAMPLE_BYTES
    assert rep.estimated_records > 1000

    rows = "".join(
        "<table:table-row><table:table-cell><text:p>"
        f"{i} rue des Lilas</text:p></table:table-cell><table:table-cell><text:p>75011 Paris"
        "</text:p></table:table-cell></table:table-row>"
        for i in range(1, 2000)
    )
    _zip(
        tmp_path / "b.ods",
        "content.xml",
        f"<office:document-content>{rows}</office:document-content>",
    )
    rep = pii.sample_file(tmp_path / "b.ods")
    assert rep is not None and rep.kinds == ("address",)


def test_sampler_never_follows_symlinks_and_ignores_other_types(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("a@example.org\n")
    (tmp_path / "link.csv").symlink_to(real)
    assert pii.sample_file(tmp_path / "link.csv") is None
    assert pii.sample_file(tmp_path / "photo.jpg") is None
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    assert pii.sample_file(broken) is None


def test_sparse_file_sampled_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:
        fh.write(b"email\nz@example.org\n")
        fh.truncate(10 * 1024**3)
    rep = pii.sample_file(path)
    assert rep is not None and rep.counts == {"email": 1}
    assert rep.sampled_bytes == pii.SAMPLE_BYTES


def test_zip_bomb_member_is_bounded(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/sharedStrings.xml", "<sst>" + "<si><t>x</t></si>" * 2_000_000 + "</sst>")
    (tmp_path / "bomb.xlsx").write_bytes(buf.getvalue())
    rep = pii.sample_file(tmp_path / "bomb.xlsx")
    assert rep is not None and not rep.has_personal_data
    assert rep.sampled_bytes == pii.SAMPLE_BYTES
