"""Customer profile (客戶信息檔案): who the customer is, whom we talk to, how we stand with them.

Personal data (SPEC §7). Every event that carries personal data carries it **only** inside one
event attribute named ``personal`` (a dict), so the service can encrypt that attribute with the
customer's own key, and an erasure request can destroy the key without touching the rest of the
event or the hash chain. Personal fields are:

- a contact person's ``name``, ``phone``, ``email`` and ``title`` (their job title identifies them);
- the ``name`` of a customer of kind ``individual`` (a company's name is not personal and travels
  in the ordinary ``name`` attribute, which is ``None`` for individuals).

Ids, flags (``is_primary``) and everything else stay outside ``personal``, so an erased customer
keeps its structure. Event bodies read ``personal`` with ``.get`` and accept an empty dict or
``None``: after erasure the record still replays and the personal fields read as ``None``.

Erasure (PIPL art. 47 / GDPR art. 17, ``erase_personal_data``) is itself an event,
``PersonalDataErased``: it clears the personal fields of the state and marks the customer
``personal_data_erased``; the service destroys the customer's key when it commits (see
``docs/personal-data.md``). Afterwards nothing personal can be added to the customer again.
The state's personal fields are named by ``split_personal_state`` / ``join_personal_state``
so the service can keep them encrypted in snapshots too.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, Literal, get_args
from uuid import UUID, uuid4

from eventsourcing.domain import event

from domain.shared import (
    Actor,
    DomainError,
    NotPermitted,
    Record,
    Role,
    UniqueKey,
    ValidationFailed,
    command,
    require,
    require_period,
    require_reason,
    require_text,
)


class CustomerKind(StrEnum):
    COMPANY = "company"
    INDIVIDUAL = "individual"


class CustomerStatus(StrEnum):
    PROSPECT = "prospect"
    ACTIVE = "active"
    DORMANT = "dormant"
    LOST = "lost"


# Where each status may go next (SPEC §3: prospect → active → dormant → lost, and back to active).
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    CustomerStatus.PROSPECT: frozenset({CustomerStatus.ACTIVE, CustomerStatus.LOST}),
    CustomerStatus.ACTIVE: frozenset({CustomerStatus.DORMANT, CustomerStatus.LOST}),
    CustomerStatus.DORMANT: frozenset({CustomerStatus.ACTIVE, CustomerStatus.LOST}),
    CustomerStatus.LOST: frozenset({CustomerStatus.ACTIVE}),
}

InteractionChannel = Literal["phone", "email", "online_chat", "visit", "meeting"]

CREDIT_CODE_NAMESPACE = "customer.credit_code"
_CREDIT_CODE = re.compile(r"[0-9A-Z]{18}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9()\- ]+")

# Who looks after a customer: the owning department's people (SPEC §1, "record customer
# interactions"); auditors, analysts, finance and leadership only read.
CARETAKER_ROLES = (Role.MEMBER, Role.CUSTOMER_SERVICE, Role.DEPT_MANAGER, Role.DEPUTY_MANAGER)

# Who may erase a customer's personal data (PIPL art. 47 / GDPR art. 17): company-wide roles.
ERASER_ROLES = (Role.LEADERSHIP, Role.DATA_PROTECTION)

# The personal fields of a contact person (the state's ``contacts`` items).
PERSONAL_CONTACT_FIELDS = ("name", "phone", "email", "title")


class PersonalDataGone(DomainError):
    """The customer's personal data was erased: nothing personal may be added to it again, and
    it cannot be erased twice."""

    status = 409
    rule = "personal_data_erased"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _optional_text(value: str | None, field: str, *, max_length: int = 2_000) -> str | None:
    text = (value or "").strip()
    require(len(text) <= max_length, f"'{field}' is longer than {max_length} characters",
            field=field)
    return text or None


def _credit_code(kind: str, credit_code: str | None) -> str | None:
    code = (credit_code or "").strip().upper()
    if kind == CustomerKind.INDIVIDUAL:
        require(not code, "individual customers have no unified social credit code",
                field="credit_code", rule="credit_code_not_applicable")
        return None
    require(bool(code), "a company needs its unified social credit code", field="credit_code",
            rule="required")
    require(bool(_CREDIT_CODE.fullmatch(code)),
            "the unified social credit code is 18 upper-case letters and digits",
            field="credit_code", rule="credit_code_format")
    return code


def _phone(value: str | None) -> str | None:
    phone = _optional_text(value, "phone", max_length=40)
    if phone is not None:
        digits = sum(ch.isdigit() for ch in phone)
        require(bool(_PHONE.fullmatch(phone)) and 5 <= digits <= 20,
                "'phone' is not a phone number", field="phone", rule="phone_format")
    return phone


def _email(value: str | None) -> str | None:
    email = _optional_text(value, "email", max_length=254)
    if email is not None:
        require(bool(_EMAIL.fullmatch(email)), "'email' is not an e-mail address", field="email",
                rule="email_format")
    return email


class Customer(Record):
    """A customer's profile, contacts, interactions and feedback, owned by one department.

    Uniqueness: a company is identified by its unified social credit code (``credit_code``,
    統一社會信用代碼, required, 18 upper-case letters and digits, stored upper-cased); registering
    claims it with ``UniqueKey.claim("customer.credit_code", code, customer)``, so a second
    company with the same code collides when saved. Individuals have no registration number we
    may collect, so no uniqueness rule applies to them (duplicates are merged by people, not
    refused). The credit code cannot be changed after registration: it is the key other records
    and the claim refer to; a wrong code means registering the right customer anew. The kind
    cannot change either, for the same reason.
    """

    RECORD_TYPE = "customer"

    @event("Registered")
    def __init__(self, *, department: str, kind: str, name: str | None, credit_code: str | None,
                 industry: str | None, acquisition_channel: str | None, needs: str | None,
                 preferences: str | None, segment: str | None, account_owner: str | None,
                 registered_by: str, personal: dict[str, Any] | None) -> None:
        personal = personal or {}
        self.department = department
        self.kind = kind
        self.name: str | None = personal.get("name") if kind == CustomerKind.INDIVIDUAL else name
        self.credit_code = credit_code
        self.industry = industry
        self.acquisition_channel = acquisition_channel
        self.needs = needs
        self.preferences = preferences
        self.segment = segment
        self.account_owner = account_owner
        self.registered_by = registered_by
        self.status: str = CustomerStatus.PROSPECT.value
        self.status_history: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self.interactions: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.personal_data_erased = False
        self.personal_data_erased_at: dt.datetime | None = None

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    @command
    def register(cls, actor: Actor, *, department: str, kind: CustomerKind, name: str,
                 credit_code: str | None = None, industry: str | None = None,
                 acquisition_channel: str | None = None, needs: str | None = None,
                 preferences: str | None = None, segment: str | None = None,
                 account_owner: str | None = None) -> Customer | tuple[Customer, UniqueKey]:
        """Registers a prospect; the department's members, customer service or managers may (only a manager names the account owner)."""  # noqa: E501
        department = require_text(department, "department", max_length=64)
        _check_caretaker(actor, department, "register a customer")
        try:
            kind = CustomerKind(kind)
        except ValueError:
            raise ValidationFailed(f"unknown customer kind '{kind}'", field="kind") from None
        name = require_text(name, "name", max_length=200)
        code = _credit_code(kind, credit_code)
        owner = _optional_text(account_owner, "account_owner", max_length=128)
        if owner is not None:
            _check_owner_assigner(actor, department)
        individual = kind == CustomerKind.INDIVIDUAL
        customer = cls(
            department=department, kind=kind.value,
            name=None if individual else name,
            credit_code=code,
            industry=_optional_text(industry, "industry", max_length=200),
            acquisition_channel=_optional_text(acquisition_channel, "acquisition_channel",
                                               max_length=200),
            needs=_optional_text(needs, "needs"),
            preferences=_optional_text(preferences, "preferences"),
            segment=_optional_text(segment, "segment", max_length=100),
            account_owner=owner, registered_by=actor.user_id,
            personal={"name": name} if individual else {},
        )
        if code is None:
            return customer
        return customer, UniqueKey.claim(CREDIT_CODE_NAMESPACE, code, customer)

    # -- profile ----------------------------------------------------------------------------

    @command
    def update_profile(self, actor: Actor, *, name: str | None = None,
                       industry: str | None = None, acquisition_channel: str | None = None,
                       needs: str | None = None, preferences: str | None = None,
                       segment: str | None = None) -> None:
        """Changes the given profile fields (omitted: unchanged, empty: cleared); the department's members, customer service or managers may."""  # noqa: E501
        _check_caretaker(actor, self.department, "update the customer profile")
        given = {"industry": industry, "acquisition_channel": acquisition_channel,
                 "needs": needs, "preferences": preferences, "segment": segment}
        changes: dict[str, Any] = {}
        for field, value in given.items():
            if value is None:
                continue
            limit = 2_000 if field in ("needs", "preferences") else 200
            new = _optional_text(value, field, max_length=limit)
            if new != getattr(self, field):
                changes[field] = new
        personal: dict[str, Any] = {}
        if name is not None:
            new_name = require_text(name, "name", max_length=200)
            if new_name != self.name:
                if self.kind == CustomerKind.INDIVIDUAL:
                    self._check_not_erased("change an individual's name")
                    personal["name"] = new_name
                else:
                    changes["name"] = new_name
        require(bool(changes or personal), "nothing to change", rule="no_change")
        self._profile_updated(changes=changes, personal=personal, by=actor.user_id)

    @event("ProfileUpdated")
    def _profile_updated(self, changes: dict[str, Any], personal: dict[str, Any] | None,
                         by: str) -> None:
        for field, value in changes.items():
            setattr(self, field, value)
        if personal and "name" in personal:
            self.name = personal["name"]

    @command
    def assign_owner(self, actor: Actor, *, account_owner: str) -> None:
        """Names the account owner (a user id); a manager of the customer's department may."""
        _check_owner_assigner(actor, self.department)
        owner = require_text(account_owner, "account_owner", max_length=128)
        require(owner != self.account_owner, f"'{owner}' already owns this account",
                field="account_owner", rule="no_change")
        self._owner_assigned(account_owner=owner, by=actor.user_id)

    @event("OwnerAssigned")
    def _owner_assigned(self, account_owner: str, by: str) -> None:
        self.account_owner = account_owner

    @command
    def change_status(self, actor: Actor, *, to: CustomerStatus, reason: str) -> None:
        """Moves the customer along prospect → active ⇄ dormant → lost → active, with a reason; the department's members, customer service or managers may."""  # noqa: E501
        try:
            target = CustomerStatus(to)
        except ValueError:
            raise ValidationFailed(f"unknown customer status '{to}'", field="to") from None
        sources = [s for s, targets in STATUS_TRANSITIONS.items() if target in targets]
        self.check_status(f"change_status to {target.value}", *sources)
        _check_caretaker(actor, self.department, "change the customer's status")
        text = require_reason(reason, f"change the status to {target.value}")
        self._status_changed(from_status=self.status, to_status=target.value, reason=text,
                             by=actor.user_id, at=_now())

    @event("StatusChanged")
    def _status_changed(self, from_status: str, to_status: str, reason: str, by: str,
                        at: dt.datetime) -> None:
        self.status = to_status
        self.status_history.append({"from_status": from_status, "to_status": to_status,
                                    "reason": reason, "by": by, "at": at})

    # -- contact people -----------------------------------------------------------------------

    @command
    def add_contact(self, actor: Actor, *, name: str, phone: str | None = None,
                    email: str | None = None, title: str | None = None,
                    is_primary: bool = False) -> None:
        """Adds a contact person (the first one becomes primary); the department's members, customer service or managers may."""  # noqa: E501
        _check_caretaker(actor, self.department, "add a contact person")
        self._check_not_erased("add a contact person")
        personal = {"name": require_text(name, "name", max_length=200), "phone": _phone(phone),
                    "email": _email(email), "title": _optional_text(title, "title",
                                                                    max_length=200)}
        primary = bool(is_primary) or not any(c["is_primary"] for c in self.contacts)
        self._contact_added(contact_id=str(uuid4()), is_primary=primary, personal=personal,
                            by=actor.user_id)

    @event("ContactAdded")
    def _contact_added(self, contact_id: str, is_primary: bool,
                       personal: dict[str, Any] | None, by: str) -> None:
        personal = personal or {}
        if is_primary:
            for contact in self.contacts:
                contact["is_primary"] = False
        self.contacts.append({"id": contact_id, "name": personal.get("name"),
                              "phone": personal.get("phone"), "email": personal.get("email"),
                              "title": personal.get("title"), "is_primary": is_primary})

    @command
    def update_contact(self, actor: Actor, *, contact_id: UUID, name: str | None = None,
                       phone: str | None = None, email: str | None = None,
                       title: str | None = None, is_primary: bool | None = None) -> None:
        """Changes a contact person's given fields (omitted: unchanged, empty: cleared); the department's members, customer service or managers may."""  # noqa: E501
        _check_caretaker(actor, self.department, "update a contact person")
        contact = self._contact(contact_id)
        personal: dict[str, Any] = {}
        if name is not None:
            personal["name"] = require_text(name, "name", max_length=200)
        if phone is not None:
            personal["phone"] = _phone(phone)
        if email is not None:
            personal["email"] = _email(email)
        if title is not None:
            personal["title"] = _optional_text(title, "title", max_length=200)
        personal = {k: v for k, v in personal.items() if v != contact[k]}
        if personal:
            self._check_not_erased("change a contact person's personal details")
        primary = None if is_primary is None or is_primary == contact["is_primary"] else is_primary
        require(bool(personal) or primary is not None, "nothing to change", rule="no_change")
        self._contact_updated(contact_id=contact["id"], is_primary=primary, personal=personal,
                              by=actor.user_id)

    @event("ContactUpdated")
    def _contact_updated(self, contact_id: str, is_primary: bool | None,
                         personal: dict[str, Any] | None, by: str) -> None:
        contact = next((c for c in self.contacts if c["id"] == contact_id), None)
        if contact is None:
            return
        for field in ("name", "phone", "email", "title"):
            if personal and field in personal:
                contact[field] = personal[field]
        if is_primary is not None:
            if is_primary:
                for other in self.contacts:
                    other["is_primary"] = False
            contact["is_primary"] = is_primary

    @command
    def remove_contact(self, actor: Actor, *, contact_id: UUID, reason: str) -> None:
        """Removes a contact person, with a reason; the department's members, customer service or managers may."""  # noqa: E501
        _check_caretaker(actor, self.department, "remove a contact person")
        contact = self._contact(contact_id)
        text = require_reason(reason, "remove a contact person")
        self._contact_removed(contact_id=contact["id"], reason=text, by=actor.user_id)

    @event("ContactRemoved")
    def _contact_removed(self, contact_id: str, reason: str, by: str) -> None:
        self.contacts = [c for c in self.contacts if c["id"] != contact_id]

    # -- personal data erasure (PIPL art. 47 / GDPR art. 17) -----------------------------------

    @command
    def erase_personal_data(self, actor: Actor, *, reason: str) -> None:
        """Erases the customer's personal data for good (contact people, an individual's name), in any status, with a reason; leadership or the data protection officer may."""  # noqa: E501
        _refuse_auditor(actor)
        if not actor.has_role(*ERASER_ROLES):
            raise NotPermitted("only leadership or the data protection officer erase a "
                               "customer's personal data", rule="personal_data_eraser")
        if getattr(self, "personal_data_erased", False):
            raise PersonalDataGone("this customer's personal data is already erased",
                                   rule="personal_data_already_erased")
        text = require_reason(reason, "erase a customer's personal data")
        self._personal_data_erased(reason=text, by=actor.user_id, at=_now())

    @event("PersonalDataErased")
    def _personal_data_erased(self, reason: str, by: str, at: dt.datetime) -> None:
        if self.kind == CustomerKind.INDIVIDUAL:
            self.name = None
        for contact in self.contacts:
            for field in PERSONAL_CONTACT_FIELDS:
                contact[field] = None
        self.personal_data_erased = True
        self.personal_data_erased_at = at

    def _check_not_erased(self, what: str) -> None:
        if getattr(self, "personal_data_erased", False):
            raise PersonalDataGone(
                f"this customer's personal data was erased: cannot {what} (register the "
                "customer anew if they come back)")

    @staticmethod
    def split_personal_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the state with every personal field ``None``, the personal fields) of a customer's
        state dict (``vars`` of the aggregate, as in a snapshot): the service encrypts the
        second part of snapshots with the customer's key. Pure; ``state`` is not changed."""
        public = dict(state)
        personal: dict[str, Any] = {}
        if state.get("kind") == CustomerKind.INDIVIDUAL and state.get("name") is not None:
            personal["name"] = state["name"]
            public["name"] = None
        contacts: dict[str, dict[str, Any]] = {}
        public_contacts = []
        for contact in state.get("contacts") or []:
            fields = {f: contact.get(f) for f in PERSONAL_CONTACT_FIELDS
                      if contact.get(f) is not None}
            if fields:
                contacts[contact["id"]] = fields
            public_contacts.append({**contact, **dict.fromkeys(PERSONAL_CONTACT_FIELDS)})
        public["contacts"] = public_contacts
        if contacts:
            personal["contacts"] = contacts
        return public, personal

    @staticmethod
    def join_personal_state(state: dict[str, Any], personal: dict[str, Any] | None,
                            ) -> dict[str, Any]:
        """The inverse of ``split_personal_state``; ``personal`` ``None`` (erased) leaves the
        personal fields ``None``."""
        if not personal:
            return state
        joined = dict(state)
        if "name" in personal:
            joined["name"] = personal["name"]
        contacts = personal.get("contacts") or {}
        joined["contacts"] = [{**c, **contacts.get(c["id"], {})}
                              for c in state.get("contacts") or []]
        return joined

    def _contact(self, contact_id: UUID | str) -> dict[str, Any]:
        wanted = str(contact_id)
        for contact in self.contacts:
            if contact["id"] == wanted:
                return contact
        raise ValidationFailed(f"no contact person '{wanted}' on this customer",
                               field="contact_id", rule="not_found")

    # -- interactions and feedback ------------------------------------------------------------

    @command
    def record_interaction(self, actor: Actor, *, date: dt.date, channel: InteractionChannel,
                           summary: str, follow_up_date: dt.date | None = None) -> None:
        """Records a contact with the customer (call, e-mail, chat, visit, meeting); the department's members, customer service or managers may."""  # noqa: E501
        _check_caretaker(actor, self.department, "record an interaction")
        require(channel in get_args(InteractionChannel), f"unknown channel '{channel}'",
                field="channel")
        text = require_text(summary, "summary")
        require_period(date, follow_up_date, "date", "follow_up_date")
        self._interaction_recorded(interaction_id=str(uuid4()), date=date, channel=channel,
                                   summary=text, follow_up_date=follow_up_date,
                                   by=actor.user_id)

    @event("InteractionRecorded")
    def _interaction_recorded(self, interaction_id: str, date: dt.date, channel: str,
                              summary: str, follow_up_date: dt.date | None, by: str) -> None:
        self.interactions.append({"id": interaction_id, "date": date, "channel": channel,
                                  "summary": summary, "follow_up_date": follow_up_date,
                                  "by": by})

    @command
    def record_feedback(self, actor: Actor, *, subject: str, text: str,
                        rating: int | None = None) -> None:
        """Records the customer's feedback on a product or service (rating 1–5 optional); the department's members, customer service or managers may."""  # noqa: E501
        _check_caretaker(actor, self.department, "record feedback")
        if rating is not None:
            require(isinstance(rating, int) and not isinstance(rating, bool)
                    and 1 <= rating <= 5, "'rating' is a whole number from 1 to 5",
                    field="rating", rule="rating_range")
        self._feedback_recorded(feedback_id=str(uuid4()),
                                subject=require_text(subject, "subject", max_length=200),
                                rating=rating, text=require_text(text, "text"),
                                by=actor.user_id, at=_now())

    @event("FeedbackRecorded")
    def _feedback_recorded(self, feedback_id: str, subject: str, rating: int | None, text: str,
                           by: str, at: dt.datetime) -> None:
        self.feedback.append({"id": feedback_id, "subject": subject, "rating": rating,
                              "text": text, "by": by, "at": at})


def _refuse_auditor(actor: Actor) -> None:
    # Contract §5: an auditor issues no command, even when also holding an operational role.
    if actor.has_role(Role.AUDITOR):
        raise NotPermitted("auditors read the record but issue no command",
                           rule="auditor_read_only")


def _check_caretaker(actor: Actor, department: str, what: str) -> None:
    _refuse_auditor(actor)
    if not actor.acts_in(department, *CARETAKER_ROLES):
        raise NotPermitted(
            f"only members, customer service and managers of department '{department}' may "
            f"{what}", rule="customer_department_scope")


def _check_owner_assigner(actor: Actor, department: str) -> None:
    _refuse_auditor(actor)
    if not actor.manages(department):
        raise NotPermitted("only a manager of the department assigns the account owner",
                           rule="account_owner_assigned_by_manager")
