"""Names, places and organisations of the blind evaluation set (see :mod:`.blind`).

The set's patients come from nine communities a federal safety-net network serves: the
Navajo and Hopi country of the Four Corners, the coalfields of eastern Kentucky and southern
West Virginia, the Mississippi, Louisiana and Alabama coast, Guam, Puerto Rico, the Hmong and
Somali communities of the Twin Cities, Fresno and Columbus, Haitian South Florida, and the
Marshallese and Samoan communities of Arkansas and Hawaii. Each community has its own names,
towns, counties, streets, employers, schools and clinics, so that one note stays in one
place. Identifier formats live in :mod:`.blind_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Community:
    """One community's names, places and institutions.

    Attributes:
        female: women's given names.
        male: men's given names.
        last: family names.
        cities: (town, state or territory abbreviation, ZIP) triples.
        counties: counties, parishes, municipalities or villages.
        hoods: neighbourhoods, chapters, barrios.
        streets: street lines without the house number.
        area_codes: telephone area codes.
        hospitals: hospitals and medical centres.
        clinics: clinics, pharmacies, nursing homes.
        employers: employers.
        schools: schools and colleges.
        jobs: occupations.
        spanish: whether Spanish headers fit the community.
    """

    female: tuple[str, ...]
    male: tuple[str, ...]
    last: tuple[str, ...]
    cities: tuple[tuple[str, str, str], ...]
    counties: tuple[str, ...]
    hoods: tuple[str, ...]
    streets: tuple[str, ...]
    area_codes: tuple[str, ...]
    hospitals: tuple[str, ...]
    clinics: tuple[str, ...]
    employers: tuple[str, ...]
    schools: tuple[str, ...]
    jobs: tuple[str, ...]
    spanish: bool = False


COMMUNITIES: dict[str, Community] = {
    "dine": Community(
        female=("Loretta", "Verna", "Darlene", "Shonnie", "Charlene", "Faith", "Roberta"),
        male=("Leander", "Delbert", "Harrison", "Kee", "Wilson", "Ferlin", "Hoskie"),
        last=(
            "Tsinajinnie",
            "Yazzie",
            "Benally",
            "Etsitty",
            "Bitsui",
            "Manygoats",
            "Watchman",
            "Bedonie",
            "Tsosie",
            "Nakai",
            "Sekaquaptewa",
        ),
        cities=(
            ("Shiprock", "NM", "87420"),
            ("Crownpoint", "NM", "87313"),
            ("Chinle", "AZ", "86503"),
            ("Kayenta", "AZ", "86033"),
            ("Tuba City", "AZ", "86045"),
            ("Gallup", "NM", "87301"),
            ("Kykotsmovi", "AZ", "86039"),
        ),
        counties=("San Juan County", "Apache County", "McKinley County", "Navajo County"),
        hoods=("Sanostee Chapter", "Many Farms Chapter", "Round Rock Chapter", "Lower Greasewood"),
        streets=("Sagebrush Rd", "Indian Route 13", "Chapter House Loop", "N-36 Spur", "Mesa Dr"),
        area_codes=("505", "928"),
        hospitals=(
            "Northern Dine Medical Center",
            "Chinle Comprehensive Health Care Facility",
            "Tse Bonito Indian Hospital",
        ),
        clinics=(
            "Sanostee Health Station",
            "Kayenta Dialysis Unit",
            "Crownpoint Home Health",
            "Tuba City Regional Pharmacy",
        ),
        employers=(
            "Four Corners Generating Station",
            "Kayenta Mine",
            "Chinle Unified School District",
            "Fire Rock Casino",
        ),
        schools=("Chinle High School", "Dine College", "Shiprock Boarding School"),
        jobs=(
            "sheep herder",
            "silversmith",
            "rug weaver",
            "school bus driver",
            "heavy equipment operator",
            "casino dealer",
            "tribal ranger",
        ),
    ),
    "coalfield": Community(
        female=("Ova", "Verlie", "Lorene", "Hazel", "Wanda", "Rose", "Summer", "Hope"),
        male=("Delmer", "Roscoe", "Virgil", "Estill", "Hunter", "Will", "Mason", "Arlie"),
        last=(
            "Blevins",
            "Slone",
            "Caudill",
            "Sizemore",
            "Ratliff",
            "Bowling",
            "Hatfield",
            "Bishop",
            "Hunter",
            "Mullins",
            "Couch",
        ),
        cities=(
            ("Hazard", "KY", "41701"),
            ("Harlan", "KY", "40831"),
            ("Pikeville", "KY", "41501"),
            ("Welch", "WV", "24801"),
            ("Logan", "WV", "25601"),
            ("Grundy", "VA", "24614"),
            ("Marion", "VA", "24354"),
        ),
        counties=("Letcher County", "Perry County", "McDowell County", "Buchanan County"),
        hoods=("Hurricane Gap", "Cane Branch", "Lotts Creek", "Big Ugly"),
        streets=("HC 61 Box", "Route 1 Box", "Caney Fork Rd", "Left Fork Rd", "Depot St"),
        area_codes=("606", "304", "276"),
        hospitals=(
            "Appalachian Ridge Regional Medical Center",
            "Tug Fork Community Hospital",
            "Kentucky River Valley Hospital",
        ),
        clinics=(
            "Leatherwood Rural Health Clinic",
            "Black Lung Clinic of Whitesburg",
            "Caudill Drug Store",
            "Hillcrest Nursing and Rehab",
        ),
        employers=(
            "Blackhawk Mining",
            "Consol Energy",
            "Dollar General",
            "Perry County Board of Education",
        ),
        schools=("Knott County Central High School", "Hazard Community College", "Mount View High"),
        jobs=(
            "coal miner",
            "roof bolter",
            "shuttle car operator",
            "timber cutter",
            "home health aide",
            "strip-mine truck driver",
            "grocery cashier",
        ),
    ),
    "gulf": Community(
        female=("Earline", "Huong", "Thanh Mai", "Grace", "Joy", "Clothilde", "Marisa"),
        male=("Alcide", "Clovis", "Dewey", "Lanh", "Quoc", "Boudin", "Tyrell"),
        last=(
            "Boudreaux",
            "Thibodeaux",
            "Ladner",
            "Necaise",
            "Fayard",
            "Pham",
            "Broussard",
            "Love",
            "Price",
            "Cuevas",
            "Seymour",
        ),
        cities=(
            ("Biloxi", "MS", "39530"),
            ("Pascagoula", "MS", "39567"),
            ("Jackson", "MS", "39216"),
            ("Houma", "LA", "70360"),
            ("Lafayette", "LA", "70501"),
            ("Bayou La Batre", "AL", "36509"),
            ("Florence", "AL", "35630"),
        ),
        counties=("Harrison County", "Terrebonne Parish", "Lafourche Parish", "Jackson County"),
        hoods=("East Biloxi", "Point Cadet", "Dulac", "Chauvin"),
        streets=("Back Bay Blvd", "Bayou Dularge Rd", "Pass Rd", "Division St", "Shrimp Dock Ln"),
        area_codes=("228", "985", "251", "337"),
        hospitals=(
            "Keesler Bayou VA Medical Center",
            "Terrebonne Sisters of Mercy Hospital",
            "Singing River Gulf Hospital",
        ),
        clinics=(
            "Coastal Family Health Center",
            "Bayou Oaks Hospice",
            "Point Cadet Pharmacy",
            "Dulac Community Clinic",
        ),
        employers=(
            "Ingalls Shipbuilding",
            "Gulf Island Fabrication",
            "Hard Rock Biloxi",
            "Bayou Sea Products",
        ),
        schools=("Pascagoula High School", "Terrebonne High", "Mississippi Gulf Coast CC"),
        jobs=(
            "shrimper",
            "deckhand",
            "pipefitter",
            "oil rig roughneck",
            "casino housekeeper",
            "crab picker",
            "tugboat captain",
        ),
    ),
    "guam": Community(
        female=("Rosalia", "Dolores", "Tasi", "Ana Maria", "Lourdes", "Hope"),
        male=("Vicente", "Jesus", "Juan Jose", "Ignacio", "Frank", "Joaquin"),
        last=(
            "Taitano",
            "Aguon",
            "Quinata",
            "Camacho",
            "Sablan",
            "Unpingco",
            "Blas",
            "Mendiola",
            "Tenorio",
            "San Nicolas",
        ),
        cities=(
            ("Dededo", "GU", "96929"),
            ("Yigo", "GU", "96929"),
            ("Tamuning", "GU", "96913"),
            ("Mangilao", "GU", "96913"),
            ("Hagatna", "GU", "96910"),
            ("Inarajan", "GU", "96915"),
            ("Saipan", "MP", "96950"),
        ),
        counties=("Barrigada", "Sinajana", "Talofofo", "Merizo"),
        hoods=("Harmon", "Astumbo", "Machanao", "Latte Heights"),
        streets=("Chalan Kanton Tasi", "Route 3 Marine Corps Dr", "Chalan Pago Hwy", "Dero Rd"),
        area_codes=("671", "670"),
        hospitals=(
            "Guam Memorial Hospital",
            "Guam Regional Medical City",
            "Naval Hospital Agana Heights",
        ),
        clinics=(
            "Northern Region Community Health Center",
            "Dededo Island Pharmacy",
            "Latte Heights Dialysis",
            "Sagan Mames Adult Day Care",
        ),
        employers=(
            "Andersen Air Force Base",
            "Guam Power Authority",
            "Tumon Bay Resort",
            "Guam Department of Education",
        ),
        schools=("Simon Sanchez High School", "University of Guam", "Okkodo High School"),
        jobs=(
            "hotel bellman",
            "fisherman",
            "power lineman",
            "betel nut farmer",
            "customs officer",
            "teacher's aide",
        ),
    ),
    "boricua": Community(
        female=("Yaritza", "Nilda", "Carmen Iris", "Zoraida", "Maribel", "Faith"),
        male=("Wilfredo", "Hector", "Angel Luis", "Edwin", "Radames", "Jose Miguel"),
        last=(
            "Quinones",
            "Figueroa",
            "Maldonado",
            "Velez",
            "Colon",
            "Irizarry",
            "Santiago Ortiz",
            "Rosario",
            "Negron",
            "Torres Bermudez",
        ),
        cities=(
            ("Ponce", "PR", "00731"),
            ("Mayaguez", "PR", "00680"),
            ("Bayamon", "PR", "00956"),
            ("Caguas", "PR", "00725"),
            ("Arecibo", "PR", "00612"),
            ("Humacao", "PR", "00791"),
            ("Vieques", "PR", "00765"),
        ),
        counties=("municipio de Juana Diaz", "municipio de Loiza", "Barrio Coto Laurel"),
        hoods=("Barrio Obrero", "La Perla", "Urb. Las Delicias", "Santurce"),
        streets=("Calle Luna", "Calle Progreso", "Ave. Ponce de Leon", "Calle 3 Bloque B"),
        area_codes=("787", "939"),
        hospitals=(
            "Hospital San Lucas Episcopal",
            "Hospital de Veteranos de San Juan",
            "Centro Medico Menonita de Caguas",
        ),
        clinics=(
            "Centro de Salud Familiar de Vieques",
            "Farmacia El Amal",
            "CDT de Juana Diaz",
            "Hogar Santa Teresa",
        ),
        employers=(
            "Amgen Juncos",
            "Autoridad de Energia Electrica",
            "Pueblo Supermarkets",
            "Departamento de Educacion",
        ),
        schools=("Escuela Superior Bernardino Cordero", "UPR Mayaguez", "Colegio San Conrado"),
        jobs=(
            "pharmaceutical plant technician",
            "publico driver",
            "panadero",
            "maestra",
            "lineworker",
            "cane cutter",
        ),
        spanish=True,
    ),
    "hmong": Community(
        female=("Pa Nhia", "Mai Yer", "Nou", "Yer", "Bao", "Chue"),
        male=("Kou", "Tou", "Nhia Lue", "Fue", "Xeng", "Pheng"),
        last=("Xiong", "Vang", "Thao", "Moua", "Lor", "Her", "Yang", "Chang", "Kue"),
        cities=(
            ("St. Paul", "MN", "55106"),
            ("Maplewood", "MN", "55109"),
            ("Fresno", "CA", "93727"),
            ("Merced", "CA", "95340"),
            ("Wausau", "WI", "54401"),
            ("Hickory", "NC", "28601"),
        ),
        counties=("Ramsey County", "Fresno County", "Marathon County", "Catawba County"),
        hoods=("Frogtown", "Payne-Phalen", "Dayton's Bluff", "Sunnyside"),
        streets=("Rice St", "Arlington Ave E", "Kings Canyon Rd", "Cedar Ave", "Larpenteur Ave"),
        area_codes=("651", "559", "715"),
        hospitals=(
            "Phalen Lake Regional Hospital",
            "San Joaquin Valley Heart Institute",
            "Wausau Lutheran Medical Center",
        ),
        clinics=(
            "Frogtown Family Clinic",
            "Hmong American Wellness Center",
            "Sunnyside Community Pharmacy",
            "Payne Avenue Dental",
        ),
        employers=(
            "3M Cottage Grove",
            "Foster Farms",
            "Wausau Paper",
            "Hmong Village Shopping Center",
        ),
        schools=("Harding Senior High", "Fresno City College", "Hmong College Prep Academy"),
        jobs=(
            "poultry plant line worker",
            "nail technician",
            "farmer",
            "assembly line worker",
            "interpreter",
            "shaman",
        ),
    ),
    "somali": Community(
        female=("Hodan", "Faadumo", "Ayaan", "Sahra", "Ubah", "Hibo"),
        male=("Abdirahman", "Mohamud", "Warsame", "Abdiwali", "Ilyas", "Guled"),
        last=("Warsame", "Farah", "Jama", "Osman", "Mohamed Ali", "Hirsi", "Abdullahi", "Egal"),
        cities=(
            ("Minneapolis", "MN", "55454"),
            ("Columbus", "OH", "43229"),
            ("Lewiston", "ME", "04240"),
            ("Willmar", "MN", "56201"),
            ("Faribault", "MN", "55021"),
            ("Greeley", "CO", "80631"),
        ),
        counties=("Hennepin County", "Franklin County", "Androscoggin County", "Kandiyohi County"),
        hoods=("Cedar-Riverside", "Northland", "Tree Streets", "Phillips West"),
        streets=("Riverside Ave", "Cleveland Ave", "Lisbon St", "Morse Rd", "Elliot Ave S"),
        area_codes=("612", "614", "207"),
        hospitals=(
            "Cedar Riverside Medical Center",
            "Mid-Ohio Northland Hospital",
            "Androscoggin Valley General",
        ),
        clinics=(
            "Riverside Plaza Clinic",
            "Dar Al-Shifa Pharmacy",
            "Northland Family Health",
            "Lisbon Street Urgent Care",
        ),
        employers=(
            "Jennie-O Turkey Store",
            "Amazon MSP1",
            "JBS Greeley",
            "Minneapolis Public Schools",
        ),
        schools=("South High School", "Columbus State", "Lewiston Middle School"),
        jobs=(
            "taxi driver",
            "meatpacking worker",
            "daycare provider",
            "warehouse picker",
            "security guard",
            "medical interpreter",
        ),
    ),
    "haitian": Community(
        female=("Guerline", "Fabienne", "Marie-Lourdes", "Nadege", "Rose", "Mirlande"),
        male=("Wisly", "Jean-Robert", "Fritznel", "Dieuseul", "Ronald", "Mackenson"),
        last=(
            "Jean-Baptiste",
            "Fils-Aime",
            "Desrosiers",
            "Pierre-Louis",
            "Toussaint",
            "Dieujuste",
            "Saint-Fleur",
            "Bishop",
        ),
        cities=(
            ("North Miami", "FL", "33161"),
            ("Homestead", "FL", "33030"),
            ("Belle Glade", "FL", "33430"),
            ("Immokalee", "FL", "34142"),
            ("Delray Beach", "FL", "33444"),
            ("Fort Pierce", "FL", "34950"),
        ),
        counties=("Miami-Dade County", "Palm Beach County", "Collier County", "St. Lucie County"),
        hoods=("Little Haiti", "Lemon City", "Liberty City", "Pioneer Park"),
        streets=("NE 2nd Ave", "NE 54th St", "SW 6th Ave", "Main St Lot", "NW 7th Ct"),
        area_codes=("305", "786", "561", "239"),
        hospitals=(
            "Biscayne Bay Memorial Hospital",
            "Glades Regional Medical Center",
            "Treasure Coast Lawnwood Hospital",
        ),
        clinics=(
            "Centre Sante Lakay",
            "Belle Glade Migrant Clinic",
            "Little Haiti Kreyol Pharmacy",
            "Immokalee Farmworker Health",
        ),
        employers=(
            "Florida Crystals",
            "Jackson Memorial Hospital",
            "Publix Super Markets",
            "Lipman Family Farms",
        ),
        schools=("Miami Edison Senior High", "Glades Central High", "Miami Dade College"),
        jobs=(
            "home health aide",
            "sugarcane harvester",
            "tomato picker",
            "CNA",
            "jitney driver",
            "pastor",
        ),
    ),
    "islands": Community(
        female=("Malia", "Tina", "Lisiate", "Kalena", "Joy", "Rosie"),
        male=("Sefo", "Ioane", "Tavita", "Kino", "Jibon", "Tommy"),
        last=("Faleolo", "Tuiasosopo", "Fuimaono", "Langidrik", "Kabua", "Jibas", "Lanki"),
        cities=(
            ("Springdale", "AR", "72764"),
            ("Rogers", "AR", "72756"),
            ("Waianae", "HI", "96792"),
            ("Hilo", "HI", "96720"),
            ("Pago Pago", "AS", "96799"),
            ("Enid", "OK", "73701"),
        ),
        counties=("Washington County", "Benton County", "Hawaii County", "Garfield County"),
        hoods=("Nanakuli", "Maili", "Tuitele", "Jones Mill"),
        streets=("Emma St", "Farrington Hwy", "Puainako St", "Backus Ave", "Pleasant Grove Rd"),
        area_codes=("479", "808", "684"),
        hospitals=(
            "Northwest Ozark Regional Hospital",
            "Leeward Coast Queen Kalama Hospital",
            "LBJ Tropical Medical Center",
        ),
        clinics=(
            "Springdale Marshallese Health Clinic",
            "Waianae Coast Dialysis",
            "Hilo Kaumana Pharmacy",
            "Tyson Employee Health",
        ),
        employers=(
            "Tyson Foods",
            "Pinnacle Foods",
            "Starkist Samoa cannery",
            "Walmart Home Office",
        ),
        schools=("Springdale High School", "Waianae Intermediate", "American Samoa CC"),
        jobs=(
            "poultry deboner",
            "cannery worker",
            "long-haul trucker",
            "church minister",
            "landscaper",
            "hotel housekeeper",
        ),
    ),
}

STATES: dict[str, str] = {
    "NM": "New Mexico",
    "AZ": "Arizona",
    "KY": "Kentucky",
    "WV": "West Virginia",
    "VA": "Virginia",
    "MS": "Mississippi",
    "LA": "Louisiana",
    "AL": "Alabama",
    "GU": "Guam",
    "MP": "Northern Mariana Islands",
    "PR": "Puerto Rico",
    "MN": "Minnesota",
    "CA": "California",
    "WI": "Wisconsin",
    "NC": "North Carolina",
    "OH": "Ohio",
    "ME": "Maine",
    "CO": "Colorado",
    "FL": "Florida",
    "AR": "Arkansas",
    "HI": "Hawaii",
    "AS": "American Samoa",
    "OK": "Oklahoma",
}
"""State and territory abbreviations and names; every mention is labelled LOCATION."""

ORIGINS: dict[str, tuple[str, ...]] = {
    "hmong": ("Laos", "Ban Vinai refugee camp", "Thailand"),
    "somali": ("Somalia", "Mogadishu", "Dadaab camp", "Kenya"),
    "haitian": ("Haiti", "Port-au-Prince", "Les Cayes", "Gonaives"),
    "islands": ("Majuro", "Ebeye", "Marshall Islands", "Apia"),
    "guam": ("Rota", "Tinian", "Chuuk"),
    "boricua": ("Dominican Republic", "Aguadilla", "Yauco"),
    "gulf": ("Vietnam", "Vung Tau", "New Orleans"),
    "dine": ("Window Rock", "Fort Defiance", "Albuquerque"),
    "coalfield": ("Dayton", "Cincinnati", "Detroit"),
}
"""Birthplaces and former homes (countries, towns, camps), labelled LOCATION."""

CLINICIAN_FIRST = (
    "Reuben",
    "Marisol",
    "Annette",
    "Prakash",
    "Ngozi",
    "Tasi",
    "Joseph",
    "Consuelo",
    "Bryce",
    "Yolanda",
    "Dmitri",
    "Kalani",
    "Odessa",
    "Wendell",
    "Farhiya",
    "Laurentiu",
)
CLINICIAN_LAST = (
    "Begaye",
    "Quinones-Rivera",
    "Kahn",
    "Venkataraman",
    "Okafor",
    "Aguon",
    "Blevins",
    "Acevedo",
    "Hollister",
    "Sweatt",
    "Petrosyan",
    "Kealoha",
    "Fontenot",
    "Marcantel",
    "Nur",
    "Ionescu",
    "Walker",
    "King",
    "Young",
)
CREDENTIALS = ("MD", "DO", "RN", "NP", "FNP-C", "PA-C", "LCSW", "PharmD", "DDS", "OD", "CNM", "RD")

FIRST = tuple(sorted({n for c in COMMUNITIES.values() for n in (*c.female, *c.male)}))
LAST = tuple(sorted({n for c in COMMUNITIES.values() for n in c.last}))
HOSPITALS = tuple(h for c in COMMUNITIES.values() for h in c.hospitals)
ORGS = tuple(o for c in COMMUNITIES.values() for o in (*c.clinics, *c.employers, *c.schools))
CITIES = tuple(city for c in COMMUNITIES.values() for city in c.cities)

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
MESES = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)
_ONES = ("", *["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
_ORDINAL_ONES = (
    "",
    *["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"],
)


def age_words(age: int) -> str:
    """An age of 90 to 109 in words ("ninety-four", "one hundred and two")."""
    if not 90 <= age <= 109:
        raise ValueError("age_words covers 90-109")
    if age < 100:
        return "ninety" + (f"-{_ONES[age - 90]}" if age > 90 else "")
    return "one hundred" + (f" and {_ONES[age - 100]}" if age > 100 else "")


def day_ordinal_words(day: int) -> str:
    """A day of the month in ordinal words ("fourteenth", "twenty-first")."""
    if not 1 <= day <= 31:
        raise ValueError("day must be 1-31")
    teens = {
        10: "tenth",
        11: "eleventh",
        12: "twelfth",
        13: "thirteenth",
        14: "fourteenth",
        15: "fifteenth",
        16: "sixteenth",
        17: "seventeenth",
        18: "eighteenth",
        19: "nineteenth",
        20: "twentieth",
        30: "thirtieth",
    }
    if day in teens:
        return teens[day]
    if day < 10:
        return _ORDINAL_ONES[day]
    tens = "twenty" if day < 30 else "thirty"
    return f"{tens}-{_ORDINAL_ONES[day % 10]}"
