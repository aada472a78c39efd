"""The retention agent: destroy each campaign's files on time.

On an election's retention date, unless a legal hold is set, every campaign
dataset is purged from the election's bucket (every version and delete marker)
and share; before that, the consenting contacts of tabular datasets are copied
to the party's permanent store and opt-outs become HMAC entries in a
suppression list that outlives every election. The election's KMS key is then
scheduled for deletion and a signed deletion certificate is written. Every step
is journaled before it is done, so a crash at any point resumes cleanly.
"""
