"""Group chat: one channel model served as Multi-User Chat (XEP-0045) and as MIX (XEP-0369 and
family), with MIX-PAM (XEP-0405) for the users' side and XEP-0408 coexistence.

Kept light (nothing is imported here): the extensions are ``directory`` ("channels"),
``muc`` ("muc"), ``mix`` ("mix") and ``pam`` ("mix_pam"); see docs/groupchat.md.
"""
