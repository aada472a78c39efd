"""`isoloir register`: the art. 30 register built from the example policies, checked
field by field against the CNIL's register template (one sheet per processing
activity: controller, representative and DPO; purposes; categories of persons and
of data, sensitive data apart; retention; recipients; transfers outside the EU;
security measures grouped as the template groups them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isoloir import cli
from isoloir.dpo import art30
from isoloir.policy import load_policies

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
# The CNIL template's sections, in its order (the French headings the DPO fills in).
CNIL_SHEET = [
    "Responsable du traitement",
    "Représentant",
    "Délégué à la protection des données",
    "Activité de traitement",
    "Finalité(s) du traitement",
    "Base(s) légale(s)",
    "Catégories de personnes concernées",
    "Catégories de données collectées",
    "Données sensibles",
    "Durées de conservation",
    "Catégories de destinataires",
    "Transferts hors de l'Union européenne",
    "Mesures de sécurité",
]
CNIL_SECURITY = [
    "Contrôle d'accès des utilisateurs",
    "Mesures de traçabilité",
    "Mesures de protection des logiciels",
    "Sauvegarde des données",
    "Chiffrement des données",
    "Contrôle des sous-traitants",
    "Autres mesures",
]


@pytest.fixture(scope="module")
def doc() -> dict:  # type: ignore[type-arg]
    return art30.build(load_policies(POLICIES), "fr")


def test_the_template_sections_in_order() -> None:
    assert [fr for _f, fr, _en in art30.FIELDS] == CNIL_SHEET
    assert list(art30.SECURITY_LABELS["fr"].values()) == CNIL_SECURITY


def test_controller_representative_and_dpo(doc: dict) -> None:  # type: ignore[type-arg]
    assert doc["controller"]["name"] == "Mouvement Exemple (association loi 1901)"
    assert doc["controller"]["address"] == "12 rue de l'Isoloir, 99000 Exempleville"
    assert doc["representative"] == "Claire Fictive, secrétaire générale"
    assert doc["dpo"] == "dpo@mouvement-exemple.example"


def test_the_campaign_sheet_field_by_field(doc: dict) -> None:  # type: ignore[type-arg]
    sheets = {a["reference"]: a for a in doc["activities"]}
    assert list(sheets) == ["exempleville-2027", "contacts", "suppression", "rights-requests"]
    c = sheets["exempleville-2027"]
    assert set(c) == {"reference", *art30.ACTIVITY_FIELDS}
    assert c["activity"] == "Campagne — Municipale partielle d'Exempleville 2027"
    assert c["purposes"] == [
        "communication politique et prospection pour l'élection « Municipale partielle "
        "d'Exempleville 2027 » (municipales, Commune d'Exempleville (99000), fictive)"
    ]
    assert c["legal_bases"] == [
        "prospects : intérêt légitime (art. 6(1)(f) RGPD)",
        "porte-a-porte : intérêt légitime (art. 6(1)(f) RGPD)",
        "benevoles : consentement (art. 6(1)(a) RGPD)",
    ]
    assert set(c["persons"]) == {
        "habitants rencontrés lors du porte-à-porte",
        "personnes ayant accepté d'être contactées par le parti",
    }
    assert c["data"][0] == "état civil et adresse postale"
    assert {"adresse électronique", "numéro de téléphone", "demande d'opposition"} <= set(c["data"])
    # a party's door-to-door results, prospects and volunteers reveal political opinions
    # (art. 9), each with the condition its dataset declares
    assert c["sensitive"] == [
        "opinions politiques réelles ou supposées (art. 9 RGPD) : prospects (à compléter), "
        "porte-a-porte (consentement explicite, art. 9(2)(a)), benevoles (à compléter)"
    ]
    # retention: the election's due date (2 months after the second round)
    assert "prospects : jusqu'au 2027-05-21 (fin de la campagne)" in c["retention"]
    assert "porte-a-porte : jusqu'au 2027-05-21 (fin de la campagne)" in c["retention"]
    # compliance review E7: kept data is not kept forever
    assert (
        "benevoles : jusqu'à la fin des échanges réguliers, de l'adhésion ou du consentement, "
        "avec un réexamen chaque année par le délégué à la protection des données"
    ) in c["retention"]
    assert c["recipients"][0] == "équipe de campagne de l'élection : 2 membre(s)"
    assert any("Amazon Web Services" in r and "eu-west-3" in r for r in c["recipients"])
    assert c["transfers"] == [
        "aucun transfert hors de l'Union européenne déclaré : données hébergées dans les "
        "régions eu-west-3 (UE)"
    ]
    sec = c["security"]
    assert list(sec) == list(art30.SECURITY_LABELS["fr"])
    assert "MFA obligatoire (totp)" in sec["access_control"]
    assert "14 caractères" in sec["access_control"] and "3 échecs" in sec["access_control"]
    assert "SSE-KMS" in sec["encryption"]
    assert "toutes les 15 minutes" in sec["software"]
    assert sec["processors"].startswith("à compléter")


def test_the_other_sheets(doc: dict) -> None:  # type: ignore[type-arg]
    sheets = {a["reference"]: a for a in doc["activities"]}
    kept = sheets["contacts"]
    assert kept["legal_bases"] == ["benevoles : consentement (art. 6(1)(a) RGPD)"]
    assert any("/srv/isoloir/contacts" in r for r in kept["retention"])
    optout = sheets["suppression"]
    assert optout["data"] == ["empreintes HMAC de l'adresse électronique et du numéro de téléphone"]
    # the documented exception: an objection outlives every campaign (art. 21(3))
    assert optout["retention"][0].startswith("conservée d'une élection à l'autre")
    assert "sans réexamen" in optout["retention"][0]
    assert any("réexamen chaque année" in r for r in kept["retention"])
    for sheet in sheets.values():
        assert set(sheet) >= set(art30.ACTIVITY_FIELDS)
        assert all(sheet[f] for f in art30.ACTIVITY_FIELDS), sheet["reference"]


def test_the_command_renders_every_heading(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["register", "--config", str(POLICIES)]) == 0
    text = capsys.readouterr().out
    for heading in CNIL_SHEET[3 + 1 :]:
        assert text.count(f"### {heading}\n") == 4, heading
    for label in CNIL_SECURITY:
        assert text.count(f"- {label} : ") == 4, label
    assert "**Délégué à la protection des données** : dpo@mouvement-exemple.example" in text
    assert cli.main(["register", "--config", str(POLICIES), "--json", "--lang", "en"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["activities"][0]["activity"].startswith("Campaign — ")
