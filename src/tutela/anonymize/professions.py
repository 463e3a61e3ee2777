"""Professions (i2b2's PROFESSION category) found by the phrases that introduce a job.

A job title alone is not an identifier of the note's subject ("seen by the nurse"), so a
phrase must say it is the person's job: ``works as a``, ``retired as a``, ``Occupation:``,
``a joiner by trade`` (any short phrase counts), or a weaker ``former``, ``is a``,
``92-year-old`` before a known occupation or a job word (``operator``, ``technician``).
"""

from __future__ import annotations

import re

from tutela.anonymize.spans import PiiLabel, Span


def _words(text: str) -> list[str]:
    return text.split()


def _phrases(text: str) -> list[str]:
    return text.split("|")


# Occupations, one per ``|`` (several are phrases: "truck driver", "meat cutter").
_OCCUPATIONS = frozenset(
    _phrases(
        "accountant|actor|actress|actuary|administrative assistant|administrator|aide|airman|"
        "analyst|animator|announcer|anthropologist|appraiser|archaeologist|architect|archivist|"
        "artist|assembler|assessor|astronomer|athlete|attendant|attorney|au pair|auctioneer|"
        "auditor|author|auto mechanic|babysitter|bailiff|baker|bank teller|banker|barber|barista|"
        "barrister|bartender|beautician|beekeeper|bellhop|biologist|blacksmith|boilermaker|"
        "bookbinder|bookkeeper|botanist|bouncer|brewer|bricklayer|broadcaster|broker|bureaucrat|"
        "bus driver|busboy|butcher|cab driver|cabinet maker|cabinetmaker|cafeteria worker|captain|"
        "caregiver|carpenter|carpet layer|cartographer|case manager|cashier|caterer|chaplain|"
        "chauffeur|chef|chemist|childcare worker|chiropractor|choreographer|civil servant|"
        "claims adjuster|cleaner|clerk|clockmaker|coach|cobbler|colonel|comedian|composer|"
        "computer programmer|concierge|conductor|constable|construction worker|consultant|"
        "contractor|cook|corporal|corrections officer|cosmetologist|counselor|counsellor|courier|"
        "court reporter|cowboy|crane operator|crossing guard|curator|custodian|dairy farmer|dancer|"
        "data analyst|day laborer|daycare worker|deacon|dean|deckhand|decorator|delivery driver|"
        "dental assistant|dental hygienist|dentist|deputy|designer|detective|developer|dietitian|"
        "diplomat|dishwasher|dispatcher|distiller|dockworker|doctor|doorman|doula|drafter|"
        "draftsman|dressmaker|drummer|drywaller|economist|editor|electrician|emt|engineer|"
        "entrepreneur|esthetician|estate agent|factory worker|farm worker|farmer|farmhand|"
        "financial adviser|financial advisor|firefighter|fisher|fisherman|fitness instructor|"
        "flight attendant|floor installer|florist|food server|footballer|foreman|forklift operator|"
        "furniture maker|gardener|geologist|glazier|graphic designer|grocer|groomer|groundskeeper|"
        "guitarist|hairdresser|handyman|heavy equipment operator|home health aide|housekeeper|"
        "housepainter|hvac technician|hygienist|illustrator|imam|influencer|inspector|instructor|"
        "insulator|insurance adjuster|insurance agent|interior designer|ironworker|it specialist|"
        "it technician|janitor|jeweler|jockey|journalist|judge|kennel worker|knitter|"
        "lab technician|laboratory technician|laborer|labourer|landscaper|launderer|lawyer|"
        "lecturer|legal secretary|legislator|letter carrier|librarian|licensed practical nurse|"
        "lieutenant|lifeguard|line cook|lineman|lineworker|linguist|loan officer|locksmith|logger|"
        "longshoreman|lumberjack|lunch lady|machine operator|machinist|magician|magistrate|maid|"
        "mail carrier|manager|manicurist|marine|marshal|mason|massage therapist|mathematician|"
        "mayor|meat cutter|mechanic|medical assistant|merchant|messenger|meteorologist|midwife|"
        "migrant worker|miner|minister|missionary|monk|mover|musician|nail technician|nanny|"
        "network engineer|notary|novelist|nun|nurse|nurse aide|nurse practitioner|nurse's aide|"
        "nursing assistant|nutritionist|occupational therapist|office manager|optician|optometrist|"
        "orderly|organist|orthodontist|packer|painter|paralegal|paramedic|pastor|pastry chef|"
        "peddler|personal care aide|personal trainer|pharmacist|pharmacy technician|philosopher|"
        "phlebotomist|photographer|physical therapist|physician|physician assistant|physicist|"
        "pianist|picker|pilot|pipefitter|plasterer|plumber|podiatrist|poet|police officer|"
        "politician|porter|postal worker|postman|postwoman|potter|priest|principal|printer|"
        "prison guard|professor|programmer|psychiatrist|psychologist|psychotherapist|publisher|"
        "rabbi|radiographer|radiologic technologist|ranch hand|rancher|real estate agent|realtor|"
        "receptionist|referee|registered nurse|reporter|researcher|respiratory therapist|"
        "retail worker|roofer|sailor|sales clerk|sales representative|salesman|salesperson|"
        "saleswoman|schoolteacher|scientist|screenwriter|sculptor|seamstress|seaman|"
        "seasonal worker|secretary|security guard|security officer|senator|sergeant|server|"
        "sheet metal worker|shepherd|sheriff|shipwright|shoemaker|shopkeeper|singer|social worker|"
        "sociologist|software developer|software engineer|soldier|solicitor|sonographer|sorter|"
        "speech therapist|statistician|steelworker|stevedore|steward|stewardess|stock clerk|"
        "stockbroker|stocker|stonemason|storekeeper|student|stylist|substitute teacher|surgeon|"
        "surgical technician|surveyor|systems administrator|tailor|tanner|taxi driver|teacher|"
        "teacher's aide|teaching assistant|technician|technologist|teller|theologian|therapist|"
        "tiler|tool and die maker|toolmaker|train driver|trader|trapper|trooper|truck driver|"
        "trucker|tutor|typesetter|typist|umpire|underwriter|upholsterer|usher|valet|vendor|"
        "veterinarian|veterinary assistant|veterinary technician|violinist|vintner|waiter|waitress|"
        "warden|warehouse worker|watchmaker|weaver|web developer|welder|winemaker|woodworker|"
        "writer|x-ray technician|yoga instructor|zookeeper"
    )
)
# Head nouns that make a job of the words before them ("forklift operator", "HVAC
# technician", "claims adjuster"); with a weak cue ("former", "is a") the phrase must end
# in one of these or be an occupation above.
_JOB_HEADS = frozenset(
    _words(
        "technician operator controller guard adjuster cutter reporter worker driver "
        "assistant aide clerk officer manager supervisor agent specialist coordinator "
        "director representative rep mechanic engineer teacher inspector installer repairer "
        "handler attendant maker smith wright keeper fitter man woman person mason cook "
        "chef nurse therapist artist writer editor designer analyst consultant planner "
        "dispatcher broker dealer trader instructor tutor counselor counsellor advisor "
        "adviser server porter steward grower picker packer "
        "loader mover cleaner sweeper collector examiner estimator appraiser scientist "
        "developer programmer administrator secretary receptionist laborer labourer farmer "
        "miner painter plumber welder carpenter electrician roofer machinist technologist "
        "hygienist fixer builder fabricator auditor tester shearer"
    )
)
_JOB_PHRASE = r"[A-Za-z][\w'/&-]*(?:[ \t]+[A-Za-z][\w'/&-]*){0,3}"
# Phrases that say the next words are the person's job: with these, any short phrase
# counts ("works as a barista", "retired as a court reporter", "Occupation: welder").
_STRONG_CUE = re.compile(
    r"(?i:\b(?:works?|worked|working|employed|retired|job|career|position|trained|"
    r"hired)(?:[ \t]+(?:nights?|days|night[ \t]+shifts?|day[ \t]+shifts?|shifts?"
    r"|part-time|full-time|locally|there|here|now|currently|previously|until\s+\d{4}))*"
    # the employer may come between ("works at Halloran Mining as a ...")
    r"(?:[ \t]+(?:at|for|with)[ \t]+[^\n,.;()]{1,40}?)?"
    r"[ \t]+as[ \t]+(?:an?|the)[ \t]+"
    r"|\b(?:occupation|profession|job(?:[ \t]+title)?|employment|trade|vocation|work)"
    r"\b[ \t]*(?::|-|\u2013|[ \t]is)[ \t]*(?:(?:an?|retired|former)[ \t]+)?)"
    rf"(?P<v>{_JOB_PHRASE})"
)
# Weaker cues: the phrase must end in a job head noun or be a known occupation.
_WEAK_CUE = re.compile(
    r"(?i:\b(?:retired|former|ex-|unemployed|part-time|full-time|self-employed|laid-off)"
    r"[ \t]*"
    r"|\b(?:is|was|as|i'?m|I[ \t]+am)[ \t]+an?[ \t]+(?:retired[ \t]+|former[ \t]+)?"
    r"|\b(?:y/?o|yo|y\.o\.|years?[- ]old|yrs?[- ]old|yr[- ]old)[ \t]+(?:(?:male|female|man"
    r"|woman|m|f|retired|former|widowed|married|single|divorced)[ \t]+)*)"
    rf"(?P<v>{_JOB_PHRASE})"
)
# Cues that speak of employment ("retired", "self-employed", "previously a"): after these,
# a word shaped like a job title ("fishmonger", "scaffolder", "machinist") counts too.
_EMPLOYMENT_CUE = re.compile(
    r"(?i:\b(?:(?:retired|former|formerly|previously|self-employed|part-time|full-time)\b|ex-)"
    r"(?:[ \t]+an?\b)?[ \t]*)"
    rf"(?P<v>{_JOB_PHRASE})"
)
# After an age ("a 61-year-old tea picker", "99yo seafarer", "a 90 yr old female, a blackjack
# dealer") or as an aside in brackets ("Pt (a silversmith) asks", "(im a welder now)"), a
# word shaped like a job title counts, and so does any short phrase that an accident at
# work or a place of origin follows ("line cook injured at", "aide fell from").
_AGE_CUE = re.compile(
    r"(?i:(?:\b|(?<=\d))(?:y/?o|yo|y\.o\.|years?[- ]old|yrs?[- ]old|yr[- ]old)[ \t]+"
    r"(?:(?:male|female|man|woman|lady|gentleman|m|f|widowed|married|single|divorced)"
    r"[ \t]*,?[ \t]+)*(?:an?[ \t]+)?"
    r"|\((?:i'?m[ \t]+|I[ \t]+am[ \t]+)?an?[ \t]+)"
    rf"(?P<v>{_JOB_PHRASE})"
)
_AT_WORK_AFTER = re.compile(
    r"[ \t]+(?:injured|fell|hurt|crushed|burned|burnt|cut|who[ \t]+(?:lost|works|worked)"
    r"|from[ \t]+[A-Z]|at[ \t]+work)\b|[ \t]*(?:now)?\)"
)
# "a keen walker", "a heavy drinker": a habit, not a job
_HABIT_WORDS = frozenset(
    _words("keen avid heavy light social good poor occasional regular casual frequent big")
)
_AGENT_NOUN = re.compile(r"(?i:[a-z]{2,}(?:er|or|ist|ian|man|woman|smith|monger|wright))$")
# ... and, after an employment cue only, a trade's familiar name ("a postie", "a brickie")
_FAMILIAR_TRADE = re.compile(r"(?i:[a-z]{3,}ie)$")
_BY_TRADE = re.compile(
    rf"(?i:\b(?:an?|the)[ \t]+)(?P<v>{_JOB_PHRASE})[ \t]+by[ \t]+(?:trade|profession|occupation)\b"
)
# Words that end a job phrase ("a welder for the county", "an aide at the school").
_PHRASE_STOP = frozenset(
    _words(
        "for with at in on who which that and or but since until from to of by receiving "
        "presenting presented admitted seen here there now currently previously until when "
        "while after before is was has had who's whose living lives so because resides "
        "residing based injured fell hurt crushed burned burnt "
    )
)
_NOT_JOBS = frozenset(
    _words(
        "smoker drinker user patient member resident person man woman female male historian "
        "team unit whole result precaution reminder bridge volunteer partner passenger "
        "bystander sister brother mother father daughter son lover worrier "
        "sufferer survivor donor neighbour neighbor relative visitor other gentleman lady "
        "m f boy girl child infant toddler adult"
    )
)
# Words shaped like job titles that name a clinical trait ("a known carrier", "a poor
# metaboliser", "a right-hander"): not jobs unless a strong cue says so.
_CLINICAL_AGENTS = frozenset(
    _words(
        "carrier responder non-responder metabolizer metaboliser converter feeder walker "
        "sleeper snorer eater speaker talker hander right-hander left-hander"
    )
)
# A role in an event, not a job ("restrained driver in an MVC", "front-seat passenger").
_ROLE_WORDS = frozenset(["restrained", "unrestrained", "designated", "front-seat", "rear-seat"])
# Terms of employment before a job ("part-time", "self-employed"), not part of it.
_TERMS = frozenset(_words("self-employed part-time full-time retired former casual freelance"))
_AGE_WORD = re.compile(r"(?i:.*(?:\d|-old|-yr|-year)$)")


def _job_phrase(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The job words at the start of ``text[start:end]``: after any age ("92-yr-old"), up
    to a stop word ("for", "with", "who"), at most four words."""
    words = list(re.finditer(r"[A-Za-z][\w'/&-]*", text[start:end]))
    kept: list[re.Match[str]] = []
    for w in words:
        if w.group(0).lower() in _PHRASE_STOP or len(kept) == 4:
            break
        if _AGE_WORD.match(w.group(0)) or (not kept and w.group(0).lower() in _TERMS):
            # "a ninety-one-year-old pastor", "a self-employed florist": the job comes after
            kept = []
            continue
        kept.append(w)
    if not kept:
        return None
    return start + kept[0].start(), start + kept[-1].end()


def _is_job(phrase: str) -> bool:
    words = phrase.lower().split()
    if not words or words[-1] in _NOT_JOBS or _ROLE_WORDS.intersection(words):
        return False
    whole = " ".join(words)
    for candidate in (whole, whole.removesuffix("s"), words[-1], words[-1].removesuffix("s")):
        if candidate in _OCCUPATIONS or candidate in _JOB_HEADS:
            return True
    return False


_NOT_JOB_WORDS = frozenset(
    _words(
        "a an the retired former widowed divorced married single female male woman man old "
        "who with and is was "
    )
)


def recognize_profession(text: str) -> list[Span]:
    """Occupations introduced as someone's job (``works as a welder``, ``retired
    longshoreman``, ``Occupation: plumber``, ``a joiner by trade``); i2b2's PROFESSION
    category.

    After a phrase that says what follows is a job (``works as a``, ``Occupation:``), any
    short phrase counts; after a weaker one (``former``, ``is a``, ``92-year-old``) the
    phrase must be a known occupation or end in a job word (``operator``, ``technician``).
    """
    out: list[Span] = []
    taken: list[tuple[int, int]] = []
    cues = (
        (_STRONG_CUE, True),
        (_BY_TRADE, True),
        (_WEAK_CUE, False),
        (_EMPLOYMENT_CUE, None),
        (_AGE_CUE, None),
    )
    for pattern, strong in cues:  # strong None: an employment cue (see _EMPLOYMENT_CUE)
        for m in pattern.finditer(text):
            found = _job_phrase(text, m.start("v"), m.end("v"))
            if found is None:
                continue
            start, end = found
            phrase = text[start:end]
            if phrase.split()[0].lower() in _NOT_JOB_WORDS:
                continue
            if _ROLE_WORDS.intersection(phrase.lower().split()):
                continue  # "restrained driver": a role in a crash
            last = phrase.split()[-1].lower()
            accepted = (
                (strong and last not in _NOT_JOBS)
                or _is_job(phrase)
                or (
                    pattern is _AGE_CUE
                    and last not in _NOT_JOBS
                    and last not in _CLINICAL_AGENTS
                    and _AT_WORK_AFTER.match(text, end) is not None
                )
                or (
                    strong is None
                    and last not in _NOT_JOBS
                    and last.rsplit("-", 1)[-1] not in _NOT_JOBS
                    and last not in _CLINICAL_AGENTS
                    and phrase.split()[0].lower() not in _HABIT_WORDS
                    and (
                        _AGENT_NOUN.match(last)
                        or (pattern is _EMPLOYMENT_CUE and _FAMILIAR_TRADE.match(last))
                    )
                )
            )
            if not accepted:
                continue
            if any(a < end and start < b for a, b in taken):
                continue
            taken.append((start, end))
            out.append(Span(start, end, PiiLabel.PROFESSION, 0.7, "profession"))
    return out
