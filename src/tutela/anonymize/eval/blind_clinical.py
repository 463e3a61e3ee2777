"""Identifier-free lines of the blind evaluation set (see :mod:`.blind`).

Every line reads like an identifier could be in it and none is: eponyms (Parkinson, Foley,
Glasgow, Babinski, Whipple), drug and device brand names (Eliquis, Omnipod, Medtronic
Azure), scores, units, ICD-10, CPT and LOINC codes, lot-style strings, doses written with
slashes and dashes, ages under 90, relative times ("post-op day 3", "x2 weeks") and diseases
named after places (Rocky Mountain spotted fever, Lyme, West Nile). These are the only
content of the set's PII-free notes.
"""

from __future__ import annotations

from tutela.anonymize.eval.render import NoteKind

K = NoteKind

SHARED = (
    "Allergies: sulfa (hives), Keflex (GI upset). NKFA.",
    "Problem list: T2DM on Jardiance, HTN, CKD 3b, OSA on CPAP 11 cm H2O.",
    "A1c 8.9% (ref 4.0-5.6). LOINC 4548-4. eGFR 41 mL/min/1.73m2.",
    "Meds reconciled with pill bottles at bedside; no changes to Eliquis 5 mg BID.",
    "Reviewed fall risk: Morse 55, high. Bed alarm on, non-skid socks given.",
    "PHQ-9 score 14 (moderate). C-SSRS negative. Safety plan reviewed.",
    "Tobacco: 1 ppd x 40 pack-years, chews Red Man. Counseled, declines Chantix.",
    "Plan discussed using teach-back; pt verbalized understanding of 2 g Na diet.",
    "Vitals: T 98.4 F, HR 88, BP 152/94, RR 18, SpO2 93% RA, wt 81.2 kg.",
    "Code status: full code. MOLST/POLST not on file; advance directive discussed.",
    "Interpreter used for entire visit (video interpreter, language line).",
    "Patient is a 67 y/o with COPD GOLD 3 on Trelegy and home O2 2 L/min via NC.",
)

CLINICAL: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "Hospital course: NSTEMI, troponin peak 2.41; LHC showed 90% LAD, DES x1.",
        "Discharged on Brilinta 90 mg BID, atorvastatin 80 mg qHS, metoprolol succinate 25 mg.",
        "Foley removed POD 2; voiding trial passed. Ambulating with rolling walker.",
        "Disposition: home with home health PT/OT, follow up PCP in 7-10 days.",
        "Principal dx: sepsis due to E. coli UTI (A41.51, N39.0). Blood cx 2/2 negative.",
        "Parkinson disease, Hoehn and Yahr stage 3, on Sinemet 25/100 TID.",
        "Pending at discharge: final read of TTE, Lp(a).",
        "Diet: consistent carbohydrate, 1800 kcal, thin liquids per SLP.",
    ),
    K.REFERRAL: (
        "Reason for referral: Barrett esophagus with low-grade dysplasia, EGD requested.",
        "Please evaluate for Whipple vs. palliative stenting; CA 19-9 of 412.",
        "Urgency: routine (within 30 days). CPT 43239 requested.",
        "Clinical question: is Cushing syndrome the cause of refractory hypokalemia?",
        "Prior workup: dexamethasone suppression test abnormal, cortisol 7.2 mcg/dL.",
        "Enclosed: last 3 office notes, med list, imaging CD.",
        "Pt prefers morning appointments due to transport; wheelchair van required.",
    ),
    K.PORTAL: (
        "is it ok to take tylenol with the eliquis? my knee been swollen since tuesday",
        "Thank you for your message. Please hold metformin the day of your CT with contrast.",
        "my sugar was 312 this morning then 188 after lunch, the libre keeps beeping",
        "Refill request: Lasix 40 mg, 90 day supply, mail order.",
        "i ran out of my inhaler the blue one (albuterol) can u call it in",
        "Your lab results are normal. Your potassium was 4.1 which is in range.",
        "Reminder: bring your CPAP machine and the SD card to your sleep visit.",
    ),
    K.LAB: (
        "OBR|1||||80053^COMPREHENSIVE METABOLIC PANEL^C4",
        "OBX|1|NM|2345-7^GLUCOSE^LN||212|mg/dL|70-99|H|||F",
        "OBX|2|NM|2160-0^CREATININE^LN||1.84|mg/dL|0.70-1.30|H|||F",
        "Hemoglobin 9.2 L (13.5-17.5 g/dL). MCV 71 L. Ferritin 6 L.",
        "Specimen: serum, slightly hemolyzed. K+ may be falsely elevated.",
        "INR 3.4 H (therapeutic 2.0-3.0 on warfarin). PT 36.1 sec.",
        "Urine culture: >100,000 CFU/mL Klebsiella pneumoniae, ESBL negative.",
        "Hepatitis C Ab reactive; HCV RNA 1,240,000 IU/mL, genotype 1a.",
        "Troponin I hs 48 ng/L, repeat at 3 h 122 ng/L (delta positive).",
    ),
    K.RADIOLOGY: (
        "CT head without contrast: no acute intracranial hemorrhage. Chronic small vessel change.",
        "CXR PA/lateral: bibasilar opacities, small left effusion. Pacer leads in RA/RV.",
        "Impression: BI-RADS 4A, suspicious calcifications; stereotactic biopsy recommended.",
        "MRI L-spine: L4-L5 broad-based disc bulge with moderate foraminal stenosis.",
        "Lung-RADS 3, probably benign. Follow-up LDCT in 6 months.",
        "Technique: 100 mL Omnipaque 350 IV, 5 mm axial reformats.",
        "Findings consistent with Paget disease of bone in the right hemipelvis.",
        "Coronary calcium score (Agatston) 412, >90th percentile for age and sex.",
    ),
    K.PHARMACY: (
        "Renal dose adjustment: enoxaparin 1 mg/kg q24h for CrCl < 30 mL/min.",
        "Vancomycin trough 17.2 mcg/mL; AUC/MIC ~480. Continue 1250 mg q12h.",
        "Formulary alternative: Basaglar for Lantus, 1:1 unit conversion.",
        "Drug interaction: clarithromycin + simvastatin, risk of rhabdomyolysis; hold statin.",
        "Naloxone 4 mg nasal spray dispensed with overdose education (MEDD 96).",
        "PDMP reviewed: single prescriber, no early fills in 12 months.",
        "Step therapy met: metformin and glipizide failed; Ozempic 0.25 mg weekly started.",
    ),
    K.NURSING: (
        "0400: resting, respirations even and unlabored, Foley draining clear yellow urine.",
        "Braden 13; turned q2h, heels floated, Mepilex to sacrum intact.",
        "GCS 14 (E4 V4 M6); pupils PERRLA 3 mm. NIHSS 2.",
        "Hoyer lift x2 staff for transfer to chair. Tolerated well.",
        "Fingerstick 64 at 2100, given 4 oz juice, recheck 112.",
        "Pain 6/10 R hip, Norco 5/325 given PO, reassessed 4/10.",
        "Hospice aide bathed pt; mottling noted to bilateral knees. Family at bedside.",
        "School nurse: albuterol 2 puffs via spacer given, peak flow 280 to 340.",
    ),
    K.SOCIAL_WORK: (
        "Barriers: no running water in the home, hauls water weekly; woodstove heat.",
        "Screened for food insecurity (Hunger Vital Sign): positive.",
        "Referred to SNAP and LIHEAP; transport via non-emergency medical transport.",
        "Caregiver stress high; respite care and adult day program options reviewed.",
        "Pt declines nursing home placement; values being on ancestral land.",
        "Legal: needs durable POA for health care; notary arranged.",
        "Grief support given; patient speaks of traditional ceremony for healing.",
    ),
    K.TELEHEALTH: (
        "Visit by video; pt at home, clinician at hub site. Consent for telehealth obtained.",
        "Audio-only due to low bandwidth; camera froze x3.",
        "Home BP cuff readings reviewed: average 138/82 over 14 days.",
        "Tele-retinal screening: no diabetic retinopathy OU, next screen in 12 months.",
        "Pt showed wound on camera: 2 x 3 cm, granulating, no purulence.",
        "Tele-psychiatry: sertraline increased 50 to 100 mg daily.",
        "Peripheral IV not applicable; labs to be drawn at the nearest station.",
    ),
    K.DEVICE_CLINIC: (
        "Medtronic Azure XT DR MRI SureScan, DDDR 60-130, battery 9.5 years.",
        "Underlying rhythm: sinus brady 42 bpm. RV pacing 38%.",
        "Omnipod 5 in Automated Mode 92% of the time; TIR 71%, TBR 2%.",
        "Dexcom G7 sensor warm-up complete; calibration not required.",
        "Lead impedance RA 512 ohms, RV 608 ohms; thresholds stable.",
        "AT/AF burden 0.4%; no VT/VF episodes since last interrogation.",
        "Cochlear Nucleus 7 processor mapped; impedances within normal limits.",
        "Bilateral Phonak Audeo hearing aids cleaned; new domes fitted.",
    ),
    K.ED: (
        "Chief complaint: CP x2h, radiating to left arm, diaphoretic.",
        "Glasgow Coma Scale 15. No focal deficits. Negative Babinski bilaterally.",
        "Wells score 4.5, D-dimer 1.8; CTA chest negative for PE.",
        "Given ASA 324 mg chewed, NTG 0.4 mg SL x3, heparin bolus per ACS protocol.",
        "Rocky Mountain spotted fever considered; started doxycycline 100 mg BID.",
        "EMS: found supine, GCS 13, BGL 48, D50 given en route. ETA 12 min.",
        "Laceration 4 cm L forearm, repaired with 4-0 Ethilon, 7 simple interrupted.",
        "Tetanus up to date. Td not given.",
        "Disposition: admit to telemetry, hospitalist accepted.",
    ),
}
"""Per note kind, the kind's own lines and the shared ones."""

CLINICAL = {kind: lines + SHARED for kind, lines in CLINICAL.items()}
