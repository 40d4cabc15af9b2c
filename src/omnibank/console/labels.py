"""The names of the domains' values as the console shows them (message ids, translated where shown): one
definition each, for every page that shows them."""

from __future__ import annotations

from omnibank.console.i18n import N_

OCCUPATIONS = {
    "employee": N_("Employee"),
    "civil_servant": N_("Civil servant"),
    "business_owner": N_("Business owner"),
    "self_employed": N_("Self-employed"),
    "retired": N_("Retired"),
    "student": N_("Student"),
    "farmer": N_("Farmer"),
    "other": N_("Other"),
}
CHANNELS = {
    "app": N_("App"),
    "wechat": N_("WeChat"),
    "sms": N_("SMS"),
    "phone": N_("Phone call"),
    "branch": N_("Branch"),
    "wecom": N_("WeCom"),
    "web": N_("Web"),
    "partner": N_("Partner"),
    "email": N_("Email"),
}
PURPOSES = {
    "marketing": N_("Marketing"),
    "service": N_("Service"),
    "profiling": N_("Profiling"),
    "data_sharing": N_("Data sharing"),
}
BENEFIT_TYPES = {
    "voucher": N_("Voucher"),
    "membership": N_("Membership"),
    "e_card": N_("E-card"),
    "instant_discount": N_("Instant discount"),
    "points": N_("Points"),
    "installment_discount": N_("Instalment discount"),
    "physical_gift": N_("Physical gift"),
}
RUN_STATUSES = {"active": N_("Active"), "stopped": N_("Stopped")}  # a campaign's or a journey's
