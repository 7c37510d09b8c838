"""What the simulated customers and agents say: journey types, stages and dialogues.

Data for :mod:`journeyscope.simulator`, kept apart so the mechanics (time,
behaviours, recording) and the content (who says what, how often a stage
succeeds) can be read and changed separately. Completion rates of the
onboarding journey follow the case study in ``seeds/001``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

Line = tuple[str, str, "str | None"]

FIRST_NAMES = ["Anna", "Ben", "Chloe", "Diego", "Elif", "Farah", "Goran", "Hana", "Ivan", "Jade", "Kofi", "Lena"]
LAST_NAMES = ["Kowalski", "Okafor", "Müller", "Silva", "Tanaka", "Novak", "Haddad", "Larsen", "Moreau", "Rossi"]
GENRES = ["sci-fi", "documentaries", "crime dramas", "comedies", "anime", "thrillers", "cooking shows", "history"]
DEVICES = ["Samsung smart TV", "Roku stick", "iPhone", "Android tablet", "Fire TV", "PlayStation 5"]
PRODUCTS = ["wireless headphones", "coffee grinder", "running shoes", "desk lamp", "phone case", "backpack"]
CITIES = ["Leeds", "Porto", "Lyon", "Gdansk", "Utrecht", "Malmo", "Graz", "Cork"]


@dataclass(frozen=True)
class Facts:
    """What one customer says about themself: the facts an agent must not ask for twice."""

    name: str
    email: str
    phone: str
    genres: tuple[str, str]
    device: str
    order: str
    product: str
    city: str

    @classmethod
    def draw(cls, rnd: random.Random, index: int) -> Facts:
        first, last = rnd.choice(FIRST_NAMES), rnd.choice(LAST_NAMES)
        genres = rnd.sample(GENRES, 2)
        return cls(
            name=f"{first} {last}",
            email=f"{first.lower()}.{last[0].lower()}{index % 97}@example.com",
            phone=f"+44 7{rnd.randrange(100, 999)} {rnd.randrange(100000, 999999)}",
            genres=(genres[0], genres[1]),
            device=rnd.choice(DEVICES),
            order=f"{rnd.choice('ABCDEFGH')}{rnd.randrange(100000, 999999)}",
            product=rnd.choice(PRODUCTS),
            city=rnd.choice(CITIES),
        )


Dialogue = Callable[[random.Random, Facts, bool, bool, bool], list[Line]]


@dataclass(frozen=True)
class StageScript:
    """One stage: its dialogue, usual channels and how often it goes well."""

    name: str
    dialogue_fn: Dialogue
    completion_rate: float
    completion_with_bridge: float | None = None
    channels: tuple[str, ...] = ("chat",)
    switch_rate: float = 0.03
    slow_reply_rate: float = 0.04
    backtrack_rate: float = 0.03
    failure_outcomes: tuple[str, ...] = ("abandoned", "failed", "escalated")
    #: The agent asks again for what an earlier stage collected, unless the context bridge has shipped.
    reasks_without_bridge: bool = False

    def completion(self, *, bridge: bool, cohort: str) -> float:
        rate = self.completion_with_bridge if bridge and self.completion_with_bridge is not None else self.completion_rate
        return min(0.99, rate + (0.02 if cohort == "premium" else 0.0))

    def channel_for(self, rnd: random.Random, current: str) -> str:
        return current if current in self.channels and rnd.random() < 0.7 else rnd.choice(self.channels)

    def switch_to(self, rnd: random.Random, current: str) -> str:
        options = [c for c in ("chat", "email", "voice", "whatsapp") if c != current]
        return rnd.choice(options)

    def failure_outcome(self, rnd: random.Random) -> str:
        return rnd.choice(self.failure_outcomes)

    def dialogue(self, rnd: random.Random, facts: Facts, *, succeeded: bool, bridge: bool, revisit: bool) -> list[Line]:
        return self.dialogue_fn(rnd, facts, succeeded, bridge, revisit)


@dataclass(frozen=True)
class JourneyType:
    """A journey type: ordered stages, their scripts, cohorts and the usual first channel."""

    name: str
    scripts: dict[str, StageScript]
    cohorts: tuple[str, ...] = ("trial", "premium")
    cohort_weights: tuple[float, ...] = (0.7, 0.3)
    channels: tuple[str, ...] = ("web", "app")
    stages: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.scripts))

    def first_channel(self, rnd: random.Random) -> str:
        return rnd.choice(self.channels)


def c(text: str) -> Line:
    return ("customer", text, None)


def a(text: str) -> Line:
    return ("agent", text, None)


def tool(name: str, text: str) -> Line:
    return ("tool", text, name)


def _leave(rnd: random.Random) -> list[Line]:
    return rnd.choice(
        [
            [c("This is taking too long. I'll do it later.")],
            [c("Never mind.")],
            [],
        ]
    )


# -- onboarding (the streaming case study) -----------------------------------------------
def _sign_up(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    if revisit:
        return [
            c("I need to change the email on my account."),
            a("Of course. What is the new address?"),
            c(f"Use {f.email} please."),
            tool("update_account", f'{{"email": "{f.email}", "status": "updated"}}'),
            a("Done, your email is updated."),
        ]
    lines = [
        c("Hi, I want to sign up for the streaming plan."),
        a("Welcome! I can set that up. What name should the account be under?"),
        c(f"{f.name}."),
        a("Thanks. Which email address should we use?"),
        c(f"{f.email}"),
        tool("create_account", f'{{"name": "{f.name}", "email": "{f.email}", "status": "created"}}'),
    ]
    if ok:
        return lines + [a(f"Your account is created, {f.name.split()[0]}. Next we'll set up payment."), c("Great.")]
    return lines + [a("Sorry, that email is already registered to another account."), *_leave(rnd)]


def _payment(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [
        a("Which plan would you like: Basic, Standard or Premium?"),
        c(rnd.choice(["Standard, please.", "Premium.", "The basic one for now."])),
        a("Please enter your card details in the secure form."),
        c("Done."),
    ]
    if ok:
        return lines + [
            tool("charge_card", '{"status": "approved"}'),
            a("Payment approved. Your subscription is active."),
            c("Thanks!"),
        ]
    return lines + [
        tool("charge_card", '{"status": "declined"}'),
        a("Unfortunately the payment was declined. Could you try another card?"),
        *_leave(rnd),
    ]


def _content_prefs(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [
        a("What kinds of shows do you enjoy? I'll tailor your recommendations."),
        c(f"Mostly {f.genres[0]} and {f.genres[1]}."),
        tool("save_preferences", f'{{"genres": ["{f.genres[0]}", "{f.genres[1]}"]}}'),
    ]
    if ok:
        return lines + [a(f"Saved: {f.genres[0]} and {f.genres[1]}. Your home screen is personalised."), c("Perfect.")]
    return lines + [a("Sorry, I couldn't save your preferences right now."), *_leave(rnd)]


def _app_install(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [c(f"How do I get the app on my {f.device}?")]
    if bridge:
        # The context bridge: the install agent sees what content-prefs collected.
        lines += [
            tool("context_bridge", f'{{"genres": ["{f.genres[0]}", "{f.genres[1]}"], "device": "{f.device}"}}'),
            a(f"Search for our app in the {f.device} store and sign in; I've set your {f.genres[0]} picks to download first."),
        ]
    else:
        lines += [
            a("Sure. Before we install, what kinds of shows do you like?"),
            c(rnd.choice([
                f"I already told you: {f.genres[0]} and {f.genres[1]}.",
                f"I just said that. {f.genres[0].capitalize()} and {f.genres[1]}.",
                f"Again? {f.genres[0]} and {f.genres[1]}.",
            ])),
            a(f"Thanks. And which device are you installing on?"),
            c(f"The {f.device}, like I said."),
            a(f"Search for our app in the {f.device} store and sign in."),
        ]
    if ok:
        return lines + [
            c("Okay, it's installed and I'm signed in."),
            tool("device_check", '{"app_installed": true}'),
            a("Great, the app is installed and linked to your account."),
        ]
    return lines + [
        c("It says my account can't be found."),
        a("Hmm, please try signing in again."),
        *_leave(rnd),
    ]


def _first_watch(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [a(f"Ready for your first show? Here are some {f.genres[0]} picks for you."), c("Let me try the first one.")]
    if ok:
        return lines + [tool("playback", '{"status": "playing"}'), c("It's playing, thanks!"), a("Enjoy!")]
    return lines + [tool("playback", '{"status": "buffering"}'), c("It keeps buffering."), a("Sorry about that, please check your connection."), *_leave(rnd)]


ONBOARDING = JourneyType(
    name="onboarding",
    scripts={
        "sign-up": StageScript("sign-up", _sign_up, 0.91, channels=("web", "app")),
        "payment": StageScript("payment", _payment, 0.91, channels=("web", "app")),
        "content-prefs": StageScript("content-prefs", _content_prefs, 0.91, channels=("app", "web")),
        "app-install": StageScript(
            "app-install",
            _app_install,
            0.78,
            completion_with_bridge=0.90,
            channels=("chat", "app"),
            switch_rate=0.08,
            backtrack_rate=0.08,
            reasks_without_bridge=True,
        ),
        "first-watch": StageScript("first-watch", _first_watch, 0.88, channels=("app",)),
    },
    channels=("web", "app"),
)


# -- support: an order problem, across chat, voice and email ---------------------------
def _contact(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [c(f"Hi, my {f.product} arrived broken."), a("I'm sorry to hear that. Can I have your name, please?"), c(f"{f.name}.")]
    return lines + ([a("Thanks. Let's find your order.")] if ok else _leave(rnd))


def _identify(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [a("What's the order number?"), c(f"It's {f.order}."), tool("lookup_order", f'{{"order": "{f.order}", "item": "{f.product}"}}')]
    if ok:
        return lines + [a(f"Found it: order {f.order}, one {f.product}.")]
    return lines + [a("I can't find that order in our system."), c(f"{f.order}. That's what's on the receipt."), *_leave(rnd)]


def _diagnose(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = []
    if rnd.random() < 0.3:  # a hand-off that loses context: the order number is asked again
        lines += [a("Can you give me your order number?"), c(f"I already gave it: {f.order}.")]
    lines += [a("What exactly is wrong with it?"), c("The left side makes no sound."), a("Have you tried another device?"), c("Yes, same problem.")]
    return lines + ([a("Thanks, that confirms a hardware fault.")] if ok else [a("I'll need to check with the team and get back to you."), *_leave(rnd)])


def _resolve(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    if ok:
        return [a("I can send a replacement or refund you. Which do you prefer?"), c("A replacement, please."), tool("create_replacement", '{"status": "shipped"}'), a(f"Done: a new {f.product} ships today to {f.city}."), c("Thank you!")]
    return [a("I can offer a 10% voucher."), c("I don't want a voucher, I want it fixed."), a("I'm sorry, that's all I can do."), c("Then I want to talk to a human.")]


def _follow_up(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [a(f"Hi {f.name.split()[0]}, did your replacement {f.product} arrive?")]
    return lines + ([c("Yes, it works perfectly."), a("Glad to hear it. We've closed the case.")] if ok else [c("Not yet."), a("It's on its way.")])


SUPPORT = JourneyType(
    name="support",
    scripts={
        "contact": StageScript("contact", _contact, 0.95, channels=("chat", "whatsapp")),
        "identify": StageScript("identify", _identify, 0.9, channels=("chat", "whatsapp")),
        "diagnose": StageScript("diagnose", _diagnose, 0.85, channels=("chat", "voice"), switch_rate=0.15, slow_reply_rate=0.1),
        "resolve": StageScript("resolve", _resolve, 0.82, channels=("voice", "chat"), backtrack_rate=0.06),
        "follow-up": StageScript("follow-up", _follow_up, 0.93, channels=("email",), slow_reply_rate=0.2),
    },
    cohorts=("standard", "vip"),
    cohort_weights=(0.85, 0.15),
    channels=("chat", "whatsapp"),
)


# -- returns ------------------------------------------------------------------------------
def _request(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [c(f"I'd like to return the {f.product} from order {f.order}."), a("Sure. What's the reason for the return?"), c("It's the wrong size.")]
    return lines + ([tool("open_return", f'{{"order": "{f.order}"}}'), a("Your return is approved.")] if ok else [a("That order is outside the 30-day return window, sorry."), *_leave(rnd)])


def _label(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [a("Where should we send the return label?"), c(f"To {f.email}.")]
    return lines + ([tool("send_label", '{"sent": true}'), a("The label is in your inbox.")] if ok else [c("I never got the label."), *_leave(rnd)])


def _refund(rnd: random.Random, f: Facts, ok: bool, bridge: bool, revisit: bool) -> list[Line]:
    lines = [c("I shipped it back. When do I get my money?")]
    return lines + ([tool("issue_refund", '{"status": "refunded"}'), a("Your refund has been issued; it shows within 3 days."), c("Thanks.")] if ok else [a("We haven't received the parcel yet."), c("It's been two weeks!"), *_leave(rnd)])


RETURNS = JourneyType(
    name="returns",
    scripts={
        "request": StageScript("request", _request, 0.9, channels=("web", "chat")),
        "label": StageScript("label", _label, 0.92, channels=("email",), slow_reply_rate=0.15),
        "refund": StageScript("refund", _refund, 0.86, channels=("email", "chat", "voice"), switch_rate=0.1),
    },
    cohorts=("standard", "vip"),
    cohort_weights=(0.85, 0.15),
    channels=("web", "chat"),
)

SCRIPTS: dict[str, JourneyType] = {t.name: t for t in (ONBOARDING, SUPPORT, RETURNS)}


# -- what customers say in a post-visit survey's comment box -------------------------------
SURVEY_COMMENTS = {
    "low": ("Had to repeat myself.", "Took forever to get a reply.", "Still not sorted.",
            "Why did it ask me the same thing twice?", "Gave up in the end."),
    "mid": ("Got there eventually.", "Fine, a bit slow.", "Okay."),
    "high": ("Quick and easy, thanks!", "Very helpful.", "Sorted in minutes."),
}
