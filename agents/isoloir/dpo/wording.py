"""The words of the DPO's documents (export, register), in French and English.

Kept here rather than in the gettext catalogue: these are legal documents
whose French text is the reference, reviewed as a whole. Origins are worded
truthfully (an electoral list holds no e-mail or phone: review E3).
"""

from __future__ import annotations

from isoloir.policy.durations import every
from isoloir.policy.model import Dataset, Policies

ORIGINS = {
    "fr": {
        "electoral_roll": "la liste électorale (copie délivrée en application de l'article "
        "L. 37 du code électoral : identité et adresse postale)",
        "opt_in_form": "un formulaire par lequel la personne a accepté d'être contactée",
        "door_to_door": "un échange avec la personne lors du porte-à-porte",
        "party_members": "le fichier des adhérents du parti",
        "elected_officials_register": "le répertoire national des élus",
        "event_signup": "une inscription de la personne à un événement",
        "other": "une autre source déclarée par le responsable de traitement (à préciser "
        "à la personne)",
    },
    "en": {
        "electoral_roll": "the electoral list (copy issued under article L. 37 of the "
        "electoral code: identity and postal address)",
        "opt_in_form": "a form by which the person agreed to be contacted",
        "door_to_door": "a conversation with the person during door-to-door canvassing",
        "party_members": "the party's membership file",
        "elected_officials_register": "the national register of elected officials",
        "event_signup": "the person's registration for an event",
        "other": "another source declared by the controller (to be told to the person)",
    },
}
UNDECLARED = {
    "fr": "fichier hors des jeux de données déclarés : origine à établir par le DPO",
    "en": "file outside the declared datasets: origin to be established by the DPO",
}
LEGAL_BASES = {
    "fr": {
        "consent": "consentement (art. 6(1)(a) RGPD)",
        "legitimate_interest": "intérêt légitime (art. 6(1)(f) RGPD)",
        "legal_obligation": "obligation légale (art. 6(1)(c) RGPD)",
        "public_interest": "mission d'intérêt public (art. 6(1)(e) RGPD)",
    },
    "en": {
        "consent": "consent (art. 6(1)(a) GDPR)",
        "legitimate_interest": "legitimate interest (art. 6(1)(f) GDPR)",
        "legal_obligation": "legal obligation (art. 6(1)(c) GDPR)",
        "public_interest": "task in the public interest (art. 6(1)(e) GDPR)",
    },
}
PERMANENT = {
    "fr": "jusqu'à la fin des échanges réguliers, de l'adhésion ou du consentement, "
    "avec un réexamen {review} par le délégué à la protection des données",
    "en": "until the regular exchanges, the membership or the consent end, "
    "reviewed {review} by the data-protection officer",
}


def permanent(policies: Policies, lang: str, dataset: Dataset | None = None) -> str:
    """How long what is kept after the campaigns lasts (compliance review E7: never forever):
    for the contacts store, or a permanent dataset (its own review period, if it has one)."""
    period = (dataset.review if dataset else None) or policies.baseline.retention.permanent_review
    return PERMANENT[lang].format(review=every(period, lang))


KEPT_CONTACTS = {
    "fr": "conservé après la campagne avec le consentement de la personne",
    "en": "kept after the campaign with the person's consent",
}
RIGHTS = {
    "fr": "Vous pouvez demander l'accès à vos données, leur rectification, leur effacement, "
    "la limitation du traitement, et vous opposer à tout moment à la prospection politique. "
    "Vous pouvez introduire une réclamation auprès de la CNIL (www.cnil.fr).",
    "en": "You may ask for access to your data, its rectification or erasure, restriction "
    "of the processing, and object at any time to political prospecting. You may lodge a "
    "complaint with the CNIL (www.cnil.fr).",
}


def recipients(policies: Policies, lang: str) -> list[str]:
    """Who receives the data: the election teams, the administrators, the hosting."""
    b = policies.baseline
    regions = ", ".join(sorted({e.region for e in policies.elections} or {b.regions.default}))
    if lang == "fr":
        out = [
            "les membres de l'équipe de campagne de chaque élection "
            "(accès limité à cette élection)",
            f"les administrateurs techniques du parti ({len(b.admins)} personne(s))",
            f"l'hébergeur Amazon Web Services, sous-traitant, régions {regions} (Union européenne)",
        ]
        if b.mail.upstream is not None:
            out.append(f"le relais de messagerie du parti ({b.mail.upstream.host})")
        return out
    out = [
        "the members of each election's campaign team (access limited to that election)",
        f"the party's technical administrators ({len(b.admins)} person(s))",
        f"the host Amazon Web Services, processor, regions {regions} (European Union)",
    ]
    if b.mail.upstream is not None:
        out.append(f"the party's mail relay ({b.mail.upstream.host})")
    return out
