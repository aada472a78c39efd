"""The exposure agent: public sharing and weak settings on S3, on the shares
and in identities, ranked by the personal data exposed (docs/exposure.md)."""
