"""The register of processing activities (art. 30(1) GDPR), built from the policies.

Laid out as the CNIL's register template ("modèle de registre", one sheet per
processing activity): the controller, its representative and DPO, then per
activity its purposes, categories of persons and of data (sensitive data
apart), retention periods, recipients, transfers outside the EU and security
measures. One activity per election (its campaign), one for the party's
permanent contacts, one for the opt-out list, one for the rights requests.

What the policies do not say (processors' contracts, the date the activity
started) is written as "to complete", never guessed.
"""

from __future__ import annotations

from typing import Any

from isoloir.dpo import wording
from isoloir.policy.model import Dataset, Election, Policies

# The sheet's headings, in the CNIL template's order (field id -> fr, en).
FIELDS = (
    ("controller", "Responsable du traitement", "Controller"),
    ("representative", "Représentant", "Representative"),
    ("dpo", "Délégué à la protection des données", "Data protection officer"),
    ("activity", "Activité de traitement", "Processing activity"),
    ("purposes", "Finalité(s) du traitement", "Purpose(s) of the processing"),
    ("legal_bases", "Base(s) légale(s)", "Legal basis(es)"),
    ("persons", "Catégories de personnes concernées", "Categories of data subjects"),
    ("data", "Catégories de données collectées", "Categories of personal data"),
    ("sensitive", "Données sensibles", "Special categories of data"),
    ("retention", "Durées de conservation", "Retention periods"),
    ("recipients", "Catégories de destinataires", "Categories of recipients"),
    ("transfers", "Transferts hors de l'Union européenne", "Transfers outside the EU"),
    ("security", "Mesures de sécurité", "Security measures"),
)
ACTIVITY_FIELDS = tuple(f for f, _fr, _en in FIELDS[3:])

# Origins whose files reveal (presumed) political opinions: a party's members,
# the people met canvassing or who signed up with the party (review E1, L3).
OPINION_ORIGINS = frozenset({"party_members", "door_to_door", "opt_in_form", "event_signup"})

PERSONS = {
    "fr": {
        "electoral_roll": "électeurs inscrits sur la liste électorale",
        "opt_in_form": "personnes ayant accepté d'être contactées par le parti",
        "door_to_door": "habitants rencontrés lors du porte-à-porte",
        "party_members": "adhérents du parti",
        "elected_officials_register": "élus",
        "event_signup": "participants aux événements du parti",
        "other": "autres personnes (source à préciser)",
    },
    "en": {
        "electoral_roll": "voters on the electoral list",
        "opt_in_form": "people who agreed to be contacted by the party",
        "door_to_door": "residents met while canvassing",
        "party_members": "the party's members",
        "elected_officials_register": "elected officials",
        "event_signup": "people who signed up for the party's events",
        "other": "other people (source to be stated)",
    },
}
TEXT = {
    "fr": {
        "identity": "état civil et adresse postale",
        "email": "adresse électronique",
        "phone": "numéro de téléphone",
        "consent": "choix de consentement",
        "opt_out": "demande d'opposition",
        "opinions": "opinions politiques réelles ou supposées (art. 9 RGPD) : {datasets}",
        "none": "aucune",
        "campaign_purpose": "communication politique et prospection pour l'élection « {label} » "
        "({kind}, {scope})",
        "campaign_activity": "Campagne — {label}",
        "campaign_retention": "{dataset} : jusqu'au {due} (fin de la campagne)",
        "permanent_retention": "{dataset} : {text}",
        "permanent_activity": "Contacts réguliers et adhérents du parti",
        "permanent_purpose": "relations du parti avec ses adhérents et contacts réguliers",
        "kept": "contacts ayant consenti, conservés après chaque campagne ({path}) : {text}",
        "optout_activity": "Liste d'opposition (ne plus contacter)",
        "optout_purpose": "respecter les oppositions à la prospection politique (art. 21 RGPD)",
        "optout_persons": "personnes ayant demandé à ne plus être contactées",
        "optout_data": "empreintes HMAC de l'adresse électronique et du numéro de téléphone",
        "optout_basis": "obligation légale (art. 6(1)(c) et 21(3) RGPD)",
        "optout_retention": "conservée d'une élection à l'autre, tant que le parti fait de la "
        "prospection politique, sans réexamen qui l'effacerait : l'opposition (art. 21(3) RGPD) "
        "doit être respectée à chaque nouvelle campagne ; seules des empreintes y sont gardées",
        "rights_activity": "Demandes d'exercice des droits",
        "rights_purpose": "répondre aux demandes d'accès, de rectification, d'effacement et "
        "d'opposition dans le délai d'un mois (art. 12 RGPD)",
        "rights_persons": "personnes exerçant leurs droits",
        "rights_data": "nature de la demande, dates de réception et d'échéance, suites données "
        "(sans les coordonnées, conservées dans le dossier du DPO)",
        "rights_retention": "à définir par le DPO (journal dans l'état de l'agent)",
        "transfers": "aucun transfert hors de l'Union européenne déclaré : données hébergées "
        "dans les régions {regions} (UE)",
        "dpo_recipient": "le délégué à la protection des données",
        "members": "équipe de campagne de l'élection : {n} membre(s)",
        "to_complete": "à compléter",
    },
    "en": {
        "identity": "identity and postal address",
        "email": "e-mail address",
        "phone": "phone number",
        "consent": "consent choice",
        "opt_out": "objection request",
        "opinions": "actual or presumed political opinions (art. 9 GDPR): {datasets}",
        "none": "none",
        "campaign_purpose": "political communication and prospecting for the election "
        "\u201c{label}\u201d ({kind}, {scope})",
        "campaign_activity": "Campaign — {label}",
        "campaign_retention": "{dataset}: until {due} (end of the campaign)",
        "permanent_retention": "{dataset}: {text}",
        "permanent_activity": "The party's regular contacts and members",
        "permanent_purpose": "the party's relations with its members and regular contacts",
        "kept": "consenting contacts kept after each campaign ({path}): {text}",
        "optout_activity": "Opt-out list (do not contact)",
        "optout_purpose": "honour objections to political prospecting (art. 21 GDPR)",
        "optout_persons": "people who asked not to be contacted",
        "optout_data": "HMAC digests of the e-mail address and phone number",
        "optout_basis": "legal obligation (art. 6(1)(c) and 21(3) GDPR)",
        "optout_retention": "kept from one election to the next, as long as the party "
        "prospects, with no review that would erase it: the objection (art. 21(3) GDPR) must "
        "be honoured at every new campaign; only fingerprints are kept there",
        "rights_activity": "Requests to exercise rights",
        "rights_purpose": "answer access, rectification, erasure and objection requests "
        "within one month (art. 12 GDPR)",
        "rights_persons": "people exercising their rights",
        "rights_data": "kind of request, dates received and due, what was done (without the "
        "contact details, kept in the DPO's case file)",
        "rights_retention": "to be set by the DPO (log in the agent's state)",
        "transfers": "no transfer outside the European Union declared: data hosted in the "
        "regions {regions} (EU)",
        "dpo_recipient": "the data protection officer",
        "members": "the election's campaign team: {n} member(s)",
        "to_complete": "to complete",
    },
}


def reveals_opinions(dataset: Dataset) -> bool:
    return dataset.origin in OPINION_ORIGINS


def _data(datasets: list[Dataset], lang: str) -> list[str]:
    t = TEXT[lang]
    out = [t["identity"]]
    for key, present in (
        ("email", any(d.tabular and d.tabular.email_column for d in datasets)),
        ("phone", any(d.tabular and d.tabular.phone_column for d in datasets)),
        ("consent", any(d.tabular and d.tabular.consent for d in datasets)),
        ("opt_out", any(d.tabular and d.tabular.opt_out for d in datasets)),
    ):
        if present:
            out.append(t[key])
    return out


ART9 = {
    "fr": {
        "explicit_consent": "consentement explicite, art. 9(2)(a)",
        "members_regular_contacts": "adhérents et contacts réguliers, art. 9(2)(d)",
        "none_no_opinion_data": "aucune opinion enregistrée",
    },
    "en": {
        "explicit_consent": "explicit consent, art. 9(2)(a)",
        "members_regular_contacts": "members and regular contacts, art. 9(2)(d)",
        "none_no_opinion_data": "no opinion recorded",
    },
}


def _sensitive(datasets: list[Dataset], lang: str) -> list[str]:
    """The datasets revealing opinions, each with its declared art. 9(2) condition."""
    names = []
    for d in datasets:
        if not reveals_opinions(d):
            continue
        condition = ART9[lang].get(d.art9_condition) or TEXT[lang]["to_complete"]
        names.append(f"{d.name} ({condition})")
    if not names:
        return [TEXT[lang]["none"]]
    return [TEXT[lang]["opinions"].format(datasets=", ".join(names))]


def _bases(datasets: list[Dataset], lang: str) -> list[str]:
    colon = " :" if lang == "fr" else ":"
    return [
        f"{d.name}{colon} {wording.LEGAL_BASES[lang].get(d.legal_basis, d.legal_basis)}"
        for d in datasets
    ]


def security(policies: Policies, lang: str) -> dict[str, str]:
    """The measures the kit deploys, as the CNIL template groups them."""
    b = policies.baseline
    pw, lock = b.passwords, b.lockout
    if lang == "fr":
        return {
            "access_control": (
                f"comptes nominatifs ; MFA obligatoire ({b.mfa.method}) ; mots de passe selon "
                f"la délibération CNIL 2022-100 (profil {pw.profile}, {pw.min_length} caractères "
                f"minimum, {pw.min_classes} types) ; verrouillage après {lock.attempts} échecs ; "
                "accès cloisonné par élection (groupe, clé KMS, partage)"
            ),
            "traceability": "journaux d'accès S3 ; audit des accès aux partages Samba",
            "software": (
                "serveurs durcis (ANSSI BP-028) ; recherche d'expositions toutes les "
                f"{b.schedules.scan_interval_minutes} minutes et correction automatique"
            ),
            "backup": "versions des objets conservées dans S3 jusqu'à la purge",
            "encryption": (
                "chiffrement SSE-KMS avec une clé par élection ; TLS obligatoire ; SMB3 chiffré ; "
                "disques chiffrés"
            ),
            "processors": TEXT[lang]["to_complete"] + " (contrats de sous-traitance, art. 28)",
            "other": (
                "destruction à échéance de toutes les versions avec certificat signé ; liste "
                "d'opposition hachée (HMAC)"
            ),
        }
    return {
        "access_control": (
            f"named accounts; MFA required ({b.mfa.method}); passwords per CNIL deliberation "
            f"2022-100 (profile {pw.profile}, at least {pw.min_length} characters, "
            f"{pw.min_classes} classes); lock-out after {lock.attempts} failures; access "
            "segregated per election (group, KMS key, share)"
        ),
        "traceability": "S3 access logs; audit of the Samba shares' accesses",
        "software": (
            "hardened servers (ANSSI BP-028); exposure scan every "
            f"{b.schedules.scan_interval_minutes} minutes with automatic fixes"
        ),
        "backup": "object versions kept in S3 until the purge",
        "encryption": (
            "SSE-KMS with one key per election; TLS required; encrypted SMB3; encrypted disks"
        ),
        "processors": TEXT[lang]["to_complete"] + " (processor contracts, art. 28)",
        "other": "destruction of every version when due, with a signed certificate; hashed "
        "(HMAC) opt-out list",
    }


def _campaign(policies: Policies, e: Election, lang: str) -> dict[str, Any]:
    t = TEXT[lang]
    campaign = [d for d in e.datasets if d.campaign_specific]
    regions = e.region
    return {
        "activity": t["campaign_activity"].format(label=e.label),
        "reference": e.id,
        "purposes": [t["campaign_purpose"].format(label=e.label, kind=e.kind, scope=e.scope)],
        "legal_bases": _bases(list(e.datasets), lang),
        "persons": sorted({PERSONS[lang].get(d.origin, d.origin) for d in e.datasets}),
        "data": _data(list(e.datasets), lang),
        "sensitive": _sensitive(list(e.datasets), lang),
        "retention": [
            t["campaign_retention"].format(dataset=d.name, due=e.retention_due.isoformat())
            for d in campaign
        ]
        + [
            t["permanent_retention"].format(
                dataset=d.name, text=wording.permanent(policies, lang, d)
            )
            for d in e.datasets
            if not d.campaign_specific
        ],
        "recipients": [t["members"].format(n=len(e.members)), *wording.recipients(policies, lang)],
        "transfers": [t["transfers"].format(regions=regions)],
        "security": security(policies, lang),
    }


def build(policies: Policies, lang: str = "fr") -> dict[str, Any]:
    t = TEXT[lang]
    org = policies.baseline.organisation
    regions = ", ".join(policies.baseline.regions.allowed)
    permanent = [d for e in policies.elections for d in e.datasets if not d.campaign_specific]
    common = {
        "recipients": wording.recipients(policies, lang),
        "transfers": [t["transfers"].format(regions=regions)],
        "security": security(policies, lang),
    }
    activities = [_campaign(policies, e, lang) for e in policies.elections]
    activities.append(
        {
            "activity": t["permanent_activity"],
            "reference": "contacts",
            "purposes": [t["permanent_purpose"]],
            "legal_bases": _bases(permanent, lang),
            "persons": sorted({PERSONS[lang].get(d.origin, d.origin) for d in permanent}),
            "data": _data(permanent, lang),
            "sensitive": _sensitive(permanent, lang),
            "retention": [
                t["permanent_retention"].format(
                    dataset=d.name, text=wording.permanent(policies, lang)
                )
                for d in permanent
            ]
            + [
                t["kept"].format(
                    path=policies.baseline.retention.contacts_path,
                    text=wording.permanent(policies, lang),
                )
            ],
            **common,
        }
    )
    activities.append(
        {
            "activity": t["optout_activity"],
            "reference": "suppression",
            "purposes": [t["optout_purpose"]],
            "legal_bases": [t["optout_basis"]],
            "persons": [t["optout_persons"]],
            "data": [t["optout_data"]],
            "sensitive": [t["none"]],
            "retention": [t["optout_retention"]],
            **common,
        }
    )
    activities.append(
        {
            "activity": t["rights_activity"],
            "reference": "rights-requests",
            "purposes": [t["rights_purpose"]],
            "legal_bases": [wording.LEGAL_BASES[lang]["legal_obligation"]],
            "persons": [t["rights_persons"]],
            "data": [t["rights_data"]],
            "sensitive": [t["none"]],
            "retention": [t["rights_retention"]],
            "recipients": [t["dpo_recipient"]],
            "transfers": common["transfers"],
            "security": common["security"],
        }
    )
    return {
        "controller": {
            "name": org.controller_name,
            "address": org.controller_address,
            "party": org.party,
        },
        "representative": org.representative,
        "dpo": org.dpo_contact,
        "activities": activities,
    }


SECURITY_LABELS = {
    "fr": {
        "access_control": "Contrôle d'accès des utilisateurs",
        "traceability": "Mesures de traçabilité",
        "software": "Mesures de protection des logiciels",
        "backup": "Sauvegarde des données",
        "encryption": "Chiffrement des données",
        "processors": "Contrôle des sous-traitants",
        "other": "Autres mesures",
    },
    "en": {
        "access_control": "User access control",
        "traceability": "Traceability",
        "software": "Software protection",
        "backup": "Data backup",
        "encryption": "Data encryption",
        "processors": "Control of processors",
        "other": "Other measures",
    },
}


def render(doc: dict[str, Any], lang: str = "fr") -> str:
    """Markdown, one sheet per activity, headings in the template's order."""
    label = {f: (fr if lang == "fr" else en) for f, fr, en in FIELDS}
    title = "Registre des activités de traitement" if lang == "fr" else "Record of processing"
    c = doc["controller"]
    lines = [
        f"# {title} (art. 30 RGPD)" if lang == "fr" else f"# {title} activities (art. 30 GDPR)",
        "",
        f"**{label['controller']}** : {c['name']}, {c['address']}"
        if lang == "fr"
        else f"**{label['controller']}**: {c['name']}, {c['address']}",
        f"**{label['representative']}** : {doc['representative']}"
        if lang == "fr"
        else f"**{label['representative']}**: {doc['representative']}",
        f"**{label['dpo']}** : {doc['dpo']}"
        if lang == "fr"
        else f"**{label['dpo']}**: {doc['dpo']}",
        "",
    ]
    for n, a in enumerate(doc["activities"], start=1):
        lines += [f"## {n}. {a['activity']} ({a['reference']})", ""]
        for f in ACTIVITY_FIELDS[1:]:
            lines.append(f"### {label[f]}")
            value = a[f]
            if isinstance(value, dict):
                names = SECURITY_LABELS[lang]
                lines += [
                    f"- {names[k]} : {v}" if lang == "fr" else f"- {names[k]}: {v}"
                    for k, v in value.items()
                ]
            else:
                lines += [f"- {v}" for v in value]
            lines.append("")
    return "\n".join(lines)
