"""Fake campaign files for the demo, the tests and the benchmarks.

Every person is invented: first and last names are drawn from short lists,
phone numbers from the block the French regulator reserves for fiction
(06 39 98 xx xx), e-mail addresses from the `.example` domain reserved by
RFC 2606, towns are fictitious. Deterministic for a given seed.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass

FIRST = (
    "Alix",
    "Basile",
    "Capucine",
    "Désiré",
    "Eulalie",
    "Firmin",
    "Gaëlle",
    "Hector",
    "Iris",
    "Jules",
    "Léonie",
    "Marius",
    "Noémie",
    "Octave",
    "Perrine",
    "Quentin",
)
LAST = (
    "Fictif",
    "Exemple",
    "Modèle",
    "Essai",
    "Prototype",
    "Maquette",
    "Brouillon",
    "Ébauche",
    "Esquisse",
    "Canevas",
)
TOWNS = (("Exempleville", "99000"), ("Fictive-sur-Loire", "99100"), ("Maquetteville", "99200"))

COLUMNS = (
    "prenom",
    "nom",
    "email",
    "telephone",
    "adresse",
    "commune",
    "consentement",
    "desinscrit",
)


@dataclass(frozen=True)
class Contact:
    prenom: str
    nom: str
    email: str
    telephone: str
    adresse: str
    commune: str
    consentement: str
    desinscrit: str

    def row(self) -> list[str]:
        return [getattr(self, c) for c in COLUMNS]


def contacts(
    count: int, seed: int = 2027, consent_every: int = 4, opt_out_every: int = 7
) -> list[Contact]:
    """`count` invented contacts; every `consent_every`-th consents, every
    `opt_out_every`-th asked to be unsubscribed (never both)."""
    rng = random.Random(seed)  # noqa: S311 - not for security
    people = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        town, postcode = rng.choice(TOWNS)
        opted_out = i % opt_out_every == opt_out_every - 1
        consents = not opted_out and i % consent_every == 0
        local = f"{first}.{last}.{i}".lower().replace("ë", "e").replace("é", "e").replace("è", "e")
        people.append(
            Contact(
                prenom=first,
                nom=last,
                email=f"{local}@electeurs.example",
                telephone=f"06 39 98 {i // 100 % 100:02d} {i % 100:02d}",
                adresse=f"{1 + i % 120} rue de l'Exemple, {postcode} {town}",
                commune=town,
                consentement="oui" if consents else "non",
                desinscrit="oui" if opted_out else "",
            )
        )
    return people


def csv_text(rows: list[Contact], delimiter: str = ";") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in rows:
        writer.writerow(c.row())
    return out.getvalue()
