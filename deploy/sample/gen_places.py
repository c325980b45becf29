#!/usr/bin/env python3
"""Generates Wagu's sample place data set: FICTIONAL restaurants around Seoul and Busan.

Every name is an invented combination of words, every address starts with "(sample)" and
names a made-up street, phone numbers use the unallocated 0000 exchange, and every id is
`sample:NNNN`. Nothing here describes a real business.

The output is deterministic (fixed seed, standard library only), so regenerating it gives the
same file byte for byte:

    python3 deploy/sample/gen_places.py > storage/sample/places-sample.csv

The CSV columns are the ones `wagu_storage::records::import` reads:
id,name,category,address,lat,lng,phone,hours.
"""

import csv
import random
import sys

SEED = 20260511

# (English name, Korean name, lat, lng, district, district (ko), city, city (ko),
#  phone area code, places)
AREAS = [
    ("Euljiro", "을지로", 37.566, 126.991, "Jung-gu", "중구", "Seoul", "서울", "2", 50),
    ("Hongdae", "홍대", 37.556, 126.923, "Mapo-gu", "마포구", "Seoul", "서울", "2", 50),
    ("Gangnam", "강남", 37.498, 127.028, "Gangnam-gu", "강남구", "Seoul", "서울", "2", 50),
    ("Itaewon", "이태원", 37.534, 126.994, "Yongsan-gu", "용산구", "Seoul", "서울", "2", 50),
    ("Seongsu", "성수", 37.544, 127.056, "Seongdong-gu", "성동구", "Seoul", "서울", "2", 50),
    ("Jongno", "종로", 37.570, 126.983, "Jongno-gu", "종로구", "Seoul", "서울", "2", 50),
    ("Haeundae", "해운대", 35.158, 129.160, "Haeundae-gu", "해운대구", "Busan", "부산", "51", 20),
]

# category: (Korean food words, Latin food words)
CATEGORIES = {
    "korean": (
        ["순대국", "국밥", "칼국수", "냉면", "감자탕", "백반", "비빔밥", "설렁탕", "김치찌개", "부대찌개"],
        ["Gukbap House", "Kitchen", "Bapsang", "Soup House", "Table"],
    ),
    "bbq": (
        ["삼겹살", "갈비", "곱창", "숯불갈비", "막창", "고깃집"],
        ["BBQ", "Grill", "Charcoal Grill", "Galbi House"],
    ),
    "noodles": (
        ["국수", "잔치국수", "쌀국수", "막국수", "비빔국수"],
        ["Noodle Bar", "Noodle House", "Noodles"],
    ),
    "cafe": (
        ["커피", "다방", "카페", "로스터스"],
        ["Coffee", "Cafe", "Roasters", "Coffee Lab"],
    ),
    "bakery": (
        ["빵집", "베이커리", "제과"],
        ["Bakery", "Bakehouse", "Bread Co."],
    ),
    "chicken": (
        ["치킨", "통닭", "닭강정"],
        ["Chicken", "Fried Chicken", "Chicken & Beer"],
    ),
    "japanese": (
        ["스시", "라멘", "우동", "돈카츠", "이자카야"],
        ["Sushi", "Ramen", "Udon Bar", "Izakaya"],
    ),
    "chinese": (
        ["반점", "짬뽕", "만두", "중화요리", "마라탕"],
        ["Dumpling House", "Wok", "Noodle & Dumpling"],
    ),
    "pub": (
        ["호프", "포차", "주점", "막걸리집"],
        ["Pub", "Taproom", "Beer Hall"],
    ),
    "dessert": (
        ["빙수", "디저트", "떡집", "호떡"],
        ["Dessert Bar", "Bingsu", "Sweets"],
    ),
}

KO_PREFIX = [
    "할매", "원조", "옛날", "큰집", "진미", "황금", "우리", "고향", "소문난", "엄마손",
    "삼대", "청년", "토박이", "골목", "달빛", "보름달", "새벽", "푸른", "행복", "맛나",
]
LATIN_PREFIX = [
    "Little", "Golden", "Blue", "Corner", "Old Town", "Moon", "Green", "Happy",
    "Red Door", "Sunny", "Hidden", "Lucky",
]
HOURS = [
    "Mo-Sa 11:00-22:00",
    "Mo-Fr 11:30-14:00,17:00-22:00",
    "Tu-Su 10:00-21:00",
    "Mo-Su 17:00-02:00",
    "Mo-Su 08:00-20:00",
    "24/7",
]


def name_for(rng, category, area_en, area_ko):
    ko_words, latin_words = CATEGORIES[category]
    if rng.random() < 0.6:
        prefix, food = rng.choice(KO_PREFIX), rng.choice(ko_words)
        style = rng.randrange(3)
        if style == 0:
            return f"{prefix}{food} {area_ko}점"
        if style == 1:
            return f"{prefix} {food}"
        return f"{prefix}{food}"
    word = rng.choice(latin_words)
    if rng.random() < 0.5:
        return f"{area_en} {word}"
    return f"{rng.choice(LATIN_PREFIX)} {word}"


def address_for(rng, district, district_ko, city, city_ko):
    number = rng.randrange(1, 300)
    if rng.random() < 0.4:
        return f"(sample) {city_ko} {district_ko} 샘플로 {number}"
    street = rng.choice(["Sample-ro", "Sample-gil", "Sample-daero"])
    return f"(sample) {number} {street}, {district}, {city}"


def main():
    rng = random.Random(SEED)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["id", "name", "category", "address", "lat", "lng", "phone", "hours"])
    seen = set()
    n = 0
    for area_en, area_ko, lat, lng, district, district_ko, city, city_ko, code, count in AREAS:
        for _ in range(count):
            n += 1
            category = rng.choice(sorted(CATEGORIES))
            name = name_for(rng, category, area_en, area_ko)
            # Unique names read better on a map; a numbered branch is still plausible.
            base, k = name, 2
            while name in seen:
                name = f"{base} {k}호점"
                k += 1
            seen.add(name)
            phone = f"+82-{code}-0000-{n:04d}" if rng.random() < 0.6 else ""
            hours = rng.choice(HOURS) if rng.random() < 0.5 else ""
            out.writerow([
                f"sample:{n:04d}",
                name,
                category,
                address_for(rng, district, district_ko, city, city_ko),
                f"{lat + rng.uniform(-0.01, 0.01):.6f}",
                f"{lng + rng.uniform(-0.01, 0.01):.6f}",
                phone,
                hours,
            ])


if __name__ == "__main__":
    # The data is Korean: write UTF-8 whatever the terminal's locale, with \n line ends.
    sys.stdout.reconfigure(encoding="utf-8", newline="\n")
    main()
