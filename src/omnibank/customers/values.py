"""The values the customer file's coded fields may take. Plain constants, apart from the ORM models: the
expression parser checks literals against them in commands that never open a session."""

GENDERS = ("M", "F")
OCCUPATIONS = (
    "employee",
    "civil_servant",
    "business_owner",
    "self_employed",
    "retired",
    "student",
    "farmer",
    "other",
)
RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
CHANNEL_PREFS = ("app", "wechat", "sms", "phone", "branch")
