"""Words that are clinical content, never identifiers: drugs (generic and brand names),
abbreviations, diagnoses, note section headers and field labels.

The clinical guard (:mod:`.clinical`) drops a weakly-supported detection made only of these
words, and trims them from the ends of model-found names ("Impression: Acute" is not an
organisation, "Prescriber Ogunbanjo" is a name after a field label).
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.lower().split())


CLINICAL_LEXICON: frozenset[str] = (
    _words(
        "metformin lisinopril atorvastatin simvastatin rosuvastatin amlodipine losartan "
        "hydrochlorothiazide furosemide spironolactone metoprolol carvedilol warfarin "
        "apixaban rivaroxaban heparin enoxaparin aspirin clopidogrel insulin glargine lispro "
        "glipizide levothyroxine prednisone methylprednisolone dexamethasone albuterol "
        "tiotropium fluticasone montelukast omeprazole pantoprazole ondansetron acetaminophen "
        "ibuprofen naproxen oxycodone hydrocodone morphine tramadol gabapentin pregabalin "
        "sertraline fluoxetine citalopram escitalopram bupropion trazodone quetiapine "
        "olanzapine haloperidol lorazepam alprazolam diazepam zolpidem amoxicillin "
        "azithromycin ceftriaxone cephalexin doxycycline ciprofloxacin levofloxacin "
        "vancomycin piperacillin tazobactam metronidazole nitrofurantoin fluconazole "
        "acyclovir valacyclovir tamsulosin finasteride allopurinol colchicine methotrexate "
        "hydroxychloroquine bid tid qid qd qhs prn po iv im sc sq npo stat mg mcg ml copd chf "
        "htn dm dm2 t2dm ckd cad afib mi cva tia dvt pe uti uri gerd osa bph ards sepsis mri "
        "ct ekg ecg cxr echo tte tee eeg emg pet us cbc bmp cmp lft ua abg inr ptt hba1c a1c "
        "wbc hgb hct plt bun egfr tsh ldl hdl bnp crp esr icu ed er or pacu nicu picu ccu snf "
        "ltac hpi ros pmh psh fh sh a&p assessment plan impression diagnosis history exam pt "
        "ot slp rn np md do pa pneumonia diabetes hypertension asthma cancer carcinoma "
        "lymphoma leukemia anemia cellulitis bronchitis influenza covid covid-19 sars-cov-2 "
        "hiv hepatitis cirrhosis medicare medicaid insurance billing driver vehicle patient "
        "contact home card portal emergency records social security registration pacemaker "
        "device serial account vitals labs medications allergies discharge admission "
        "follow-up followup "
    )
    | _words(
        # brand-name drugs and contrast agents
        "tylenol advil motrin aleve lasix coumadin eliquis xarelto pradaxa plavix lipitor "
        "crestor zocor norvasc toprol lopressor coreg entresto jardiance farxiga januvia "
        "ozempic trulicity victoza lantus humalog novolog levemir tresiba glucophage synthroid "
        "prilosec nexium protonix pepcid zofran reglan keppra dilantin depakote lamictal "
        "neurontin lyrica zoloft prozac lexapro celexa wellbutrin seroquel zyprexa haldol "
        "ativan xanax valium ambien flomax proscar zyloprim augmentin zithromax keflex cipro "
        "levaquin bactrim flagyl diflucan valtrex tamiflu narcan norco percocet vicodin "
        "dilaudid ultram toradol solumedrol medrol decadron spiriva advair symbicort ventolin "
        "proair singulair flonase omnipaque isovue visipaque gadavist zosyn unasyn rocephin "
        "vanco lovenox heparin"
    )
    | _words(
        # eponymous tests, devices, scores and signs (without a disease word after them)
        "holter foley doppler swan-ganz picc port-a-cath mychart epic cerner glasgow apgar "
        "braden cockcroft-gault fleischner gleason mallampati nexus curb-65 "
        "chads2 cha2ds2-vasc has-bled killip child-pugh meld ranson bi-rads li-rads ti-rads "
        "pi-rads cam-icu rass crcl hba1c coma scale moca mmse mini-cog slums "
        "coombs romberg babinski tinel phalen lachman mcmurray kernig brudzinski "
        "trendelenburg valsalva schober finkelstein spurling rinne dix-hallpike epley "
        "fazekas bosniak breslow korotkoff kussmaul cheyne-stokes chvostek direct indirect"
    )
    | _words(
        # note sections, field labels and words that start lines in notes
        "impression findings comparison indication technique history hpi assessment plan "
        "disposition diagnosis diagnoses medications meds allergies vitals labs results "
        "report summary note notes known noted identity sender recipient subject received "
        "sent manufacturer rep representative performed collected reviewed verified signed "
        "dictated transcribed ordering attending resident fellow intern consult consultant "
        "prescriber pharmacist nurse physician provider clinician therapist interpreter "
        "department emergency radiology laboratory pharmacy cardiology neurology oncology "
        "nephrology urology surgery medicine clinic unit floor ward room bed acute chronic "
        "atrial ventricular lead full code status dnr dni pending follow followup "
        "follow-up return precautions counseling counseled patient pt client caller "
        "insurance billing account amount date time dob dos mrn admission discharge "
        "transfer triage chief complaint complaints course hospital exam examination "
        "procedure procedures specimen accession source culture cultures stat routine "
        "critical value values reference range ref high low normal abnormal positive "
        "negative left right bilateral anterior posterior superior inferior mild moderate "
        "severe stable unstable improved improving worse worsening new old prior previous "
        "current daily weekly monthly nightly morning evening night am pm today tomorrow "
        "yesterday hello hi thanks thank dear re regards sincerely please name"
    )
    | _words(
        # family and care relations that precede a name ("Granddaughter Ana Ruiz")
        "son daughter grandson granddaughter grandchild wife husband spouse partner mother "
        "father sister brother niece nephew aunt uncle cousin friend neighbor neighbour "
        "guardian caregiver proxy stepson stepdaughter stepmother stepfather "
        "advice request message inbox reply"
    )
    | _words(
        # contact-field abbreviations, titles and everyday nouns that open lines in notes
        "ph tel fax cell dr mr mrs ms prof imaging truck car motorcycle bicycle scooter wheelchair"
    )
    | _words(
        # days of the week, as dosing schedules name them ("7.5 mg Mon/Fri")
        "mon tue tues wed thu thur thurs fri sat sun monday tuesday wednesday thursday "
        "friday saturday sunday weekdays weekends"
    )
    | _words(
        # specialties, services, teams and hospital units ("seen by Palliative Care",
        # "discussed at Tumor Board", "transferred to the Medical ICU")
        "endocrine endocrinology hematology heme onc pulmonary pulmonology gastroenterology "
        "gi hepatology rheumatology dermatology psychiatry psychology orthopedics ortho "
        "anesthesia anesthesiology pathology geriatrics pediatrics obstetrics gynecology ob "
        "gyn ent ophthalmology audiology podiatry nutrition dietary chaplain chaplaincy "
        "physical occupational speech therapy rehab rehabilitation palliative hospice care "
        "infectious disease diseases wound ostomy respiratory hospitalist hospitalists "
        "internal family general primary critical intensive medical surgical step-down "
        "telemetry tele micu sicu cvicu neuro icu stepdown rapid response team board tumor "
        "service services case management cath lab endoscopy dialysis infusion "
        "heart failure transplant stroke trauma"
    )
    | _words(
        # bedside findings and status words that open lines in notes
        "alert oriented awake asleep calm agitated confused lethargic speech pupils "
        "ambulating tolerating denies reports endorses afebrile febrile tachycardic "
        "completed complete incomplete visit images image battery fall falls fingerprint "
        "id consent signed witnessed education educated instructions advance planning "
        "directive directives general appearance heent neck lungs abdomen extremities skin"
    )
    | _words(
        # device makers and product names (not identifiers of a person)
        "medtronic biotronik dexcom libre freestyle "
        "omnipod insulet t:slim minimed resmed respironics "
        "lifevest impella azure surescan micra watchman"
    )
    | _words(
        # more brand-name drugs
        "vimpat briviact topamax trileptal tegretol aricept namenda sinemet requip mirapex "
        "xifaxan lactulose creon humira enbrel remicade stelara keytruda opdivo herceptin "
        "eliquis brilinta effient multaq cordarone pacerone digoxin lanoxin bumex demadex "
        "aldactone imdur nitrostat ranexa zetia repatha praluent mounjaro wegovy rybelsus "
        "basaglar toujeo fiasp admelog humulin novolin byetta bydureon glyburide actos "
        "tradjenta invokana cymbalta effexor pristiq remeron buspar klonopin restoril "
        "abilify risperdal geodon latuda depakene lithobid suboxone subutex methadone "
        "oxycontin fentanyl duragesic robaxin flexeril zanaflex mobic celebrex voltaren "
        "medrol prednisolone kenalog hemoccult guaiac"
    )
    | _words(
        # organs, functions and services named at the start of a sentence or a heading
        # ("Bowel sounds present", "Memory Clinic"); not words that are also surnames
        "bowel bowels bladder chest liver kidney kidneys brain spine pain sleep mood appetite "
        "memory fracture fractures continence eye eyes hip knee shoulder urine stool sounds "
        "falls wound wounds breast lung physiotherapy haematology gynaecology histology "
        "microbiology dietetics orthopaedics systolic diastolic pressure"
    )
    | _words(
        # a plan's verbs, which open sentences in capitals ("Start", "Check", "Commence")
        "start commence commenced check continue stop cease ceased increase decrease reduce "
        "add review repeat refer arrange book monitor consider encourage completed attended "
        "discuss discussed advise advised trial wean withhold aim "
        # supplements and care words the model reads as names
        "folic acid vitamin iron zinc thiamine package"
    )
    | _words(
        # brands widely dispensed in the UK, Ireland, Australia, New Zealand and Canada:
        # analgesics, laxatives, anticoagulants, antibiotics, inhalers, dressings, vaccines
        "panadol nurofen panamax endone targin tramal coloxyl senna movicol laxido endep "
        "clexane fragmin pradaxa keflex augmentin somac seretide mepilex aquacel allevyn "
        "duoderm tegaderm opsite inadine acticoat kaltostat fluvax shingrix prevenar boostrix "
        "gardasil comirnaty spikevax"
    )
    | _words(
        # species of microbes, written after the genus's initial ("E. coli", "H. pylori")
        "coli pylori difficile aureus epidermidis pneumoniae influenzae faecalis faecium "
        "albicans aeruginosa jirovecii gondii trachomatis gonorrhoeae pyogenes agalactiae "
        "monocytogenes fragilis perfringens botulinum tetani cloacae mirabilis marcescens "
        "burgdorferi pallidum vivax falciparum vulgaris"
    )
)
