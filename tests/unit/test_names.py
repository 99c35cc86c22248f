import pytest

from bookwarm.parsing.names import author_key, canonical_role, parse_cell


def keys(cell, **kw):
    return [a.key for a in parse_cell(cell, **kw)]


@pytest.mark.parametrize(
    "spelling", ["J.K. Rowling", "J. K. Rowling", "JK Rowling", "j.k. rowling", "J.K.  Rowling"]
)
def test_initials_share_one_key(spelling):
    assert author_key(spelling) == "j-k-rowling"


def test_whitespace_collapsed_in_display_and_key():
    (author,) = parse_cell("Stephen        King")
    assert (author.name, author.key) == ("Stephen King", "stephen-king")


def test_accents_folded_in_key_only():
    (author,) = parse_cell("Mélanie Dupuis")
    assert author.name == "Mélanie Dupuis"
    assert author.key == "melanie-dupuis"


def test_nfkc_and_non_latin_names_survive():
    (author,) = parse_cell("琅俨")
    assert author.key == "琅俨"
    assert author_key("Ｎｅｉｌ Gaiman") == "neil-gaiman"  # full-width letters


def test_last_first_flipped_with_suffix_kept():
    (author,) = parse_cell("King, Martin Luther, Jr.", style="last_first")
    assert author.name == "Martin Luther King Jr."


def test_suffix_stays_with_name_when_splitting_lists():
    assert keys("Martin Luther King, Jr., Coretta Scott King", separator=",") == [
        "martin-luther-king-jr",
        "coretta-scott-king",
    ]


def test_all_caps_name_is_not_read_as_initials():
    assert author_key("ED CATMULL") == "ed-catmull"


@pytest.mark.parametrize(
    "junk", ["Unknown", "Anonymous", "Various", "Various Authors", "  ", "unknown author"]
)
def test_junk_authors_dropped(junk):
    assert parse_cell(junk) == ()


def test_inline_and_parallel_roles():
    people = parse_cell("Shvorne Marks (Narrator), Ann Lee", separator=",")
    assert [(p.name, p.role) for p in people] == [("Shvorne Marks", "narrator"), ("Ann Lee", "author")]
    people = parse_cell(
        "Leiserson, C.|Reynarowych, Zenon", style="last_first", separator=r"\|", roles_cell="|Translator"
    )
    assert [p.role for p in people] == ["author", "translator"]


@pytest.mark.parametrize(
    ("raw", "role"),
    [
        ("Translator", "translator"),
        ("Illustrator", "illustrator"),
        ("Editor", "editor"),
        ("ed.", "editor"),
        ("Narrator", "narrator"),
        ("", "author"),
        ("Author", "author"),
        ("Foreword", "contributor"),
    ],
)
def test_roles(raw, role):
    assert canonical_role(raw) == role


def test_auto_style_tells_last_first_from_a_list():
    assert keys("Smith, Mark", style="auto", separator=",") == ["mark-smith"]
    assert keys("Le Guin, Ursula K.", style="auto", separator=",") == ["ursula-k-le-guin"]
    assert keys("Tamsyn Muir, Aaron Reed", style="auto", separator=",") == ["tamsyn-muir", "aaron-reed"]


def test_repeated_person_in_one_cell_counted_once():
    assert keys("Neil Gaiman, Neil  Gaiman", separator=",") == ["neil-gaiman"]
