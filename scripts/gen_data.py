#!/usr/bin/env python3
"""Generate the MangaAssist mesh demo data set (Python 3.11, stdlib only).

Usage:
    python3 scripts/gen_data.py           # (re)write every file under data/ and run the checks
    python3 scripts/gen_data.py --check   # only validate the existing files and print counts

Output (relative to the repository root):
    data/catalog/products.jsonl
    data/docs/documents.jsonl
    data/users/users.jsonl
    data/users/orders.jsonl
    data/intents/train.jsonl
    data/intents/heldout.jsonl
    data/eval/retrieval.jsonl

Everything is deterministic (fixed random seed). The catalog is a realistic
sample written for this project: series, authors and premises are real, but
prices, stock levels, ids and the exact release dates of individual volumes are
invented/approximated.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
import string
import sys
from pathlib import Path

SEED = 20261123
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"

STORES = ("manga_jp", "comics_us")

GENRES = (
    "action", "adventure", "comedy", "cooking", "drama", "fantasy", "historical",
    "horror", "isekai", "martial_arts", "mecha", "music", "mystery", "psychological",
    "romance", "school", "sci_fi", "slice_of_life", "sports", "supernatural",
    "thriller", "workplace",
)
DEMOGRAPHICS = ("shonen", "seinen", "shojo", "josei", "kodomo")
INTENTS = (
    "greeting", "faq", "order_status", "product_search", "recommendation",
    "comparison", "complaint", "return_refund", "chitchat",
)
ORDER_STATUSES = ("processing", "shipped", "out_for_delivery", "delivered", "cancelled", "returned")

# ---------------------------------------------------------------------------
# Series table
# ---------------------------------------------------------------------------
# Each entry: series, author, demographic, genres, first Japanese volume date,
# number of volumes to emit, months between volumes, stores ("both"|"jp"|"us"),
# format ("std" tankobon, "big" B6/A5 seinen-size, "deluxe" large/omnibus-size),
# premise (2 sentences, own words), arcs (clauses used for per-volume text),
# optional us = first English-edition date,
# ja = the Japanese title as the Japanese publisher prints it and kana = its reading as a shopper
# would type it (katakana for loanword titles, hiragana for native words); both are required for
# every series sold in manga_jp and are emitted only on manga_jp products.


def S(series, author, demo, genres, first, nvol, every, premise, arcs, stores="both", fmt="std", us=None,
      ja=None, kana=None):
    return dict(series=series, author=author, demographic=demo, genres=genres, first=first,
                nvol=nvol, every=every, premise=premise, arcs=arcs, stores=stores, fmt=fmt, us=us,
                ja=ja, kana=kana)


SERIES = [
    # ------------------------------------------------------------------ shonen
    S("One Piece", "Eiichiro Oda", "shonen", ["action", "adventure", "comedy"], "1997-12-24", 10, 3,
      "Monkey D. Luffy, a rubber-bodied boy who ate a Devil Fruit, sets out to sea to find the legendary treasure One Piece and become King of the Pirates. Along the way he gathers a crew of misfits who each chase a dream of their own.",
      ["Luffy recruits the swordsman Zoro and the navigator Nami and clashes with Buggy the Clown",
       "the crew gains Usopp and the ship Going Merry before confronting Captain Kuro",
       "at the floating restaurant Baratie, the cook Sanji joins and the pirates face Don Krieg",
       "the Straw Hats storm Arlong Park to free Nami's village from the fish-man pirates",
       "the crew enters the Grand Line and lands among the giants of Little Garden",
       "Princess Vivi leads the crew into the desert kingdom of Alabasta against the Baroque Works syndicate"],
      us="2003-06-30", ja="ONE PIECE", kana="ワンピース"),
    S("Naruto", "Masashi Kishimoto", "shonen", ["action", "adventure", "martial_arts"], "2000-03-03", 8, 3,
      "Naruto Uzumaki is a loud, lonely ninja-in-training who carries a sealed nine-tailed fox inside him and dreams of becoming Hokage, the leader of his village. Teamed with the aloof Sasuke and the sharp Sakura under Kakashi, he fights to earn the respect of everyone who shunned him.",
      ["Team 7 is formed and faces the assassin Zabuza on a mission to the Land of Waves",
       "the Chunin Exams begin and the sinister Orochimaru targets Sasuke",
       "the Chunin Exam finals erupt into an invasion of the Leaf Village",
       "Naruto and Jiraiya search for Tsunade while Itachi returns to the village",
       "Sasuke defects and Naruto's friends race to bring him back"],
      us="2003-08-01", ja="NARUTO -ナルト-", kana="ナルト"),
    S("Dragon Ball", "Akira Toriyama", "shonen", ["action", "adventure", "comedy", "martial_arts"], "1985-09-10", 6, 3,
      "Goku, a monkey-tailed boy with superhuman strength, meets Bulma, a teenage genius hunting for the seven wish-granting Dragon Balls. Their treasure hunt grows into a saga of martial arts tournaments, rivals who become friends and ever stronger foes.",
      ["Goku and Bulma set off after the Dragon Balls and cross paths with Yamcha and the Emperor Pilaf",
       "Goku trains under Master Roshi with Krillin and enters the World Martial Arts Tournament",
       "Goku takes on the Red Ribbon Army single-handed",
       "King Piccolo is unleashed and Goku must avenge his friends"],
      us="2003-03-05", ja="DRAGON BALL", kana="ドラゴンボール"),
    S("Bleach", "Tite Kubo", "shonen", ["action", "supernatural"], "2002-01-05", 6, 3,
      "High schooler Ichigo Kurosaki can see ghosts, and when the Soul Reaper Rukia Kuchiki passes her powers to him, he becomes a substitute Soul Reaper who fights the soul-devouring Hollows. His new duty soon drags him into the politics of the afterlife itself.",
      ["Ichigo learns to purify Hollows while hiding his double life from his family and classmates",
       "Rukia is taken back to the Soul Society and Ichigo trains with Urahara to follow her",
       "Ichigo and his friends invade the Soul Society and clash with the captains of the Gotei 13",
       "the rescue of Rukia reveals a conspiracy at the heart of the Soul Society"],
      us="2004-07-06", ja="BLEACH", kana="ブリーチ"),
    S("Attack on Titan", "Hajime Isayama", "shonen", ["action", "drama", "fantasy", "horror"], "2010-03-17", 8, 4,
      "Humanity survives behind enormous walls, hiding from man-eating giants called Titans. When a colossal Titan breaches the wall and Eren Yeager loses his mother, he vows to wipe the Titans out and joins the Survey Corps with Mikasa and Armin.",
      ["the wall falls at Shiganshina and Eren, Mikasa and Armin enlist as cadets",
       "Trost District is overrun and Eren discovers he can become a Titan himself",
       "the Survey Corps ventures beyond the wall and meets the Female Titan",
       "a hunt for traitors inside the walls turns the scouts' world upside down",
       "the truth hidden in the Yeager basement begins to surface"],
      us="2012-06-19", ja="進撃の巨人", kana="しんげきのきょじん"),
    S("Demon Slayer: Kimetsu no Yaiba", "Koyoharu Gotouge", "shonen", ["action", "historical", "supernatural"], "2016-06-03", 7, 2,
      "In Taisho-era Japan, charcoal seller Tanjiro Kamado returns home to find his family slaughtered by a demon and his sister Nezuko turned into one. He joins the Demon Slayer Corps to find a cure for her and hunt down the demon Muzan Kibutsuji.",
      ["Tanjiro trains under Urokodaki and survives the Final Selection",
       "Tanjiro's first missions bring him into contact with Zenitsu and Inosuke",
       "the trio battles the spider demon family on Mount Natagumo",
       "aboard the Mugen Train, Flame Hashira Rengoku joins the fight against Enmu",
       "the Entertainment District arc pits Tanjiro and Sound Hashira Uzui against an Upper Moon"],
      us="2018-07-03", ja="鬼滅の刃", kana="きめつのやいば"),
    S("Jujutsu Kaisen", "Gege Akutami", "shonen", ["action", "horror", "supernatural", "school"], "2018-07-04", 6, 3,
      "Yuji Itadori swallows a cursed finger to save his friends and becomes host to Sukuna, the King of Curses. Instead of being executed, he enrolls at Tokyo Jujutsu High under Satoru Gojo to collect Sukuna's other fingers.",
      ["Yuji meets Megumi and Nobara and faces his first special-grade curse",
       "the cursed spirit Mahito and the rogue sorcerer Junpei force Yuji to confront what curses are",
       "the Kyoto Goodwill Event turns into an ambush",
       "the Shibuya Incident begins as a trap is sprung for Gojo"],
      us="2019-12-03", ja="呪術廻戦", kana="じゅじゅつかいせん"),
    S("My Hero Academia", "Kohei Horikoshi", "shonen", ["action", "sci_fi", "school"], "2014-11-04", 7, 3,
      "In a world where most people have superpowers called Quirks, Izuku Midoriya is born without one but still dreams of becoming a hero. When the Symbol of Peace, All Might, passes his power on to him, Izuku enters the elite U.A. High School.",
      ["Izuku inherits One For All and passes the U.A. entrance exam",
       "Class 1-A's training is interrupted by the League of Villains at the USJ",
       "the U.A. Sports Festival puts every student's Quirk in the spotlight",
       "internships lead Izuku into a confrontation with the Hero Killer Stain",
       "a summer training camp is attacked and Bakugo is kidnapped"],
      us="2015-08-04", ja="僕のヒーローアカデミア", kana="ぼくのヒーローアカデミア"),
    S("Chainsaw Man", "Tatsuki Fujimoto", "shonen", ["action", "horror", "supernatural", "comedy"], "2019-03-04", 6, 3,
      "Denji is a broke young man working off his dead father's debt by hunting devils with his chainsaw-devil dog Pochita. After a betrayal, the two merge and Denji becomes Chainsaw Man, recruited into Public Safety by the enigmatic Makima.",
      ["Denji becomes Chainsaw Man and is taken in by Makima",
       "Denji partners with the Blood Fiend Power and the stoic Aki in Public Safety",
       "the Eternity Devil traps the squad inside a hotel",
       "a mysterious girl named Reze enters Denji's life",
       "the Gun Devil's shadow falls over Public Safety"],
      us="2020-10-06", ja="チェンソーマン", kana="チェンソーマン"),
    S("Spy x Family", "Tatsuya Endo", "shonen", ["action", "comedy", "slice_of_life"], "2019-07-04", 6, 4,
      "Master spy Twilight must build a fake family to get close to a reclusive politician, so he adopts a girl and marries a stranger. He does not know that his daughter Anya reads minds and his wife Yor is a professional assassin.",
      ["Loid assembles his fake family and Anya sits the Eden Academy entrance interview",
       "Anya's first days at Eden Academy bring rivals, friends and a cheeky classmate named Damian",
       "the family adopts the precognitive dog Bond after a terrorist plot",
       "Yor's brother Yuri, a secret police officer, visits the household",
       "a luxury cruise turns into a bodyguard mission for Yor"],
      us="2020-06-02", ja="SPY×FAMILY", kana="スパイファミリー"),
    S("Haikyu!!", "Haruichi Furudate", "shonen", ["sports", "comedy", "school", "drama"], "2012-06-04", 7, 2,
      "Shoyo Hinata is short but obsessed with volleyball after watching a small player dominate on TV. At Karasuno High he must team up with his bitter rival, the genius setter Tobio Kageyama, to bring the fallen team back to nationals.",
      ["Hinata and Kageyama are forced to work together to join the Karasuno team",
       "a practice match against Aoba Johsai tests the freak quick attack",
       "Karasuno faces Nekoma, its old rival, in a long-awaited practice game",
       "the Inter-High preliminaries bring crushing defeat and new resolve",
       "summer training camp in Tokyo pushes every player to evolve"],
      us="2016-07-05", ja="ハイキュー!!", kana="ハイキュー"),
    S("Slam Dunk", "Takehiko Inoue", "shonen", ["sports", "comedy", "drama", "school"], "1991-02-08", 5, 3,
      "Hanamichi Sakuragi, a hot-headed delinquent rejected by fifty girls, joins the Shohoku High basketball team to impress Haruko. His raw athleticism and stubborn pride slowly turn into genuine love for the game.",
      ["Sakuragi joins the team and butts heads with the captain Akagi and the ace Rukawa",
       "a practice game against Ryonan shows Sakuragi how much he has to learn",
       "Miyagi and Mitsui return, and Shohoku's lineup finally takes shape",
       "the prefectural tournament begins"],
      us="2008-06-03", ja="SLAM DUNK", kana="スラムダンク"),
    S("Death Note", "Tsugumi Ohba, Takeshi Obata", "shonen", ["mystery", "psychological", "supernatural", "thriller"], "2004-04-02", 5, 3,
      "Honor student Light Yagami finds a notebook dropped by the death god Ryuk: anyone whose name is written in it dies. As Light starts purging criminals as the mysterious Kira, the eccentric detective L begins hunting him.",
      ["Light begins his crusade as Kira and L sets a trap on live television",
       "L and Light start a deadly game of deduction at To-Oh University",
       "a second Kira appears, with a shinigami of her own",
       "Light gives up his memories in a gambit to escape suspicion",
       "the Yotsuba Group investigation brings the Kira case to a turning point"],
      us="2005-10-10", ja="DEATH NOTE", kana="デスノート"),
    S("Fullmetal Alchemist", "Hiromu Arakawa", "shonen", ["action", "adventure", "fantasy"], "2002-01-22", 6, 4,
      "Brothers Edward and Alphonse Elric break alchemy's greatest taboo by trying to resurrect their mother, and pay with Ed's limbs and Al's whole body. Ed becomes a State Alchemist to search for the Philosopher's Stone and restore what they lost.",
      ["the brothers expose a false prophet in the desert town of Lior",
       "the Elrics uncover the horrifying truth behind the Philosopher's Stone",
       "the Scar hunts State Alchemists and the brothers return to their teacher Izumi",
       "the homunculi's plans begin to unfold and Maes Hughes gets too close to the truth"],
      us="2005-05-03", ja="鋼の錬金術師", kana="はがねのれんきんじゅつし"),
    S("Hunter x Hunter", "Yoshihiro Togashi", "shonen", ["action", "adventure", "fantasy"], "1998-06-04", 5, 4,
      "Gon Freecss leaves his island home to become a Hunter like the father who abandoned him. The grueling Hunter Exam introduces him to Killua, Kurapika and Leorio, friends who will follow him into ever more dangerous worlds.",
      ["Gon takes the brutal Hunter Exam alongside Killua, Kurapika and Leorio",
       "Gon and Killua climb Heavens Arena and discover Nen",
       "the friends converge on York New City where Kurapika hunts the Phantom Troupe",
       "Gon and Killua enter the deadly game Greed Island"],
      us="2005-05-03", ja="HUNTER×HUNTER", kana="ハンターハンター"),
    S("JoJo's Bizarre Adventure", "Hirohiko Araki", "shonen", ["action", "adventure", "supernatural"], "1987-08-10", 5, 3,
      "Over generations, the Joestar family battles supernatural evil, beginning with Jonathan Joestar and his adopted brother Dio Brando, who becomes a vampire with the help of an ancient stone mask. Each part follows a new JoJo with strange powers and outrageous fights.",
      ["Jonathan Joestar and Dio Brando grow up as bitter rivals in Victorian England",
       "Jonathan learns the breathing art of Hamon to fight the vampire Dio",
       "Joseph Joestar confronts the ancient Pillar Men",
       "Jotaro Kujo and his Stand set off for Egypt to defeat a resurrected Dio"],
      us="2015-02-03", ja="ジョジョの奇妙な冒険", kana="ジョジョのきみょうなぼうけん"),
    S("The Promised Neverland", "Kaiu Shirai, Posuka Demizu", "shonen", ["mystery", "thriller", "horror", "sci_fi"], "2016-12-02", 5, 3,
      "Emma and the other children of Grace Field House live happily with their loving 'Mom', until they learn the orphanage is a farm raising them as food for demons. With Norman and Ray, Emma plans an impossible escape that leaves no one behind.",
      ["Emma, Norman and Ray discover the orphanage's secret and begin planning",
       "the children play a cat-and-mouse game with Isabella and Sister Krone",
       "the escape from Grace Field begins",
       "outside the walls, the children learn the rules of the demon world"],
      us="2018-12-04", ja="約束のネバーランド", kana="やくそくのネバーランド"),
    S("Dr. Stone", "Riichiro Inagaki, Boichi", "shonen", ["adventure", "sci_fi", "comedy"], "2017-07-04", 5, 3,
      "A mysterious flash turns every human on Earth to stone, and thousands of years later science prodigy Senku wakes up in a world returned to the wild. Armed with chemistry and sheer stubbornness, he sets out to rebuild civilization from zero.",
      ["Senku and Taiju revive and start making the first chemicals of the Stone World",
       "the ruthless Tsukasa opposes Senku's plan to revive humanity",
       "Senku wins over Ishigami Village with medicine and engineering",
       "the Kingdom of Science prepares for war with cell phones and steam"],
      us="2018-09-04", ja="Dr.STONE", kana="ドクターストーン"),
    S("Blue Lock", "Muneyuki Kaneshiro, Yusuke Nomura", "shonen", ["sports", "psychological", "drama"], "2018-11-16", 6, 3,
      "After Japan's early World Cup exit, the football union locks 300 young strikers in a facility called Blue Lock to forge the world's most egotistical goal-scorer. Yoichi Isagi must learn to crush his rivals or see his career end for good.",
      ["Isagi enters Blue Lock and survives the first team elimination round",
       "the second selection forces players to steal teammates from rival groups",
       "Blue Lock's finest take on Japan's U-20 national team",
       "the Neo Egoist League brings in world-class clubs"],
      us="2022-07-12", ja="ブルーロック", kana="ブルーロック"),
    S("Kaiju No. 8", "Naoya Matsumoto", "shonen", ["action", "sci_fi"], "2020-12-04", 5, 4,
      "Kafka Hibino cleans up monster corpses for a living after failing to join Japan's Defense Force. When he suddenly gains the power to transform into a kaiju himself, he finally has a shot at fighting beside his childhood friend Mina.",
      ["Kafka becomes Kaiju No. 8 and re-applies to the Defense Force",
       "the Tachikawa base is attacked by the intelligent kaiju No. 9",
       "Kafka's secret is exposed and his fate is decided by the top brass",
       "the Defense Force mobilises its numbered weapons against a kaiju onslaught"],
      us="2021-12-21", ja="怪獣8号", kana="かいじゅうはちごう"),
    S("Frieren: Beyond Journey's End", "Kanehito Yamada, Tsukasa Abe", "shonen", ["adventure", "fantasy", "drama", "slice_of_life"], "2020-08-18", 6, 4,
      "After the hero's party defeats the Demon King, the long-lived elf mage Frieren realises she barely knew the human companions who aged and died around her. She sets out on a new journey, with apprentice Fern, to understand people.",
      ["Frieren takes on the apprentice Fern and revisits places from her old journey",
       "the warrior Stark joins, and the party confronts the demon Aura",
       "the First-Class Mage Exam brings rival mages together",
       "Frieren heads north toward Aureole, the land where souls rest"],
      us="2021-11-09", ja="葬送のフリーレン", kana="そうそうのフリーレン"),
    S("Dandadan", "Yukinobu Tatsu", "shonen", ["action", "comedy", "supernatural", "sci_fi", "romance"], "2021-08-04", 5, 3,
      "Momo believes in ghosts but not aliens; her classmate Okarun believes in aliens but not ghosts. A dare to prove each other wrong leaves both of them tangled up with yokai and extraterrestrials, and with each other.",
      ["Momo and Okarun meet the Turbo Granny and the Serpoians",
       "the pair hunt for Okarun's stolen 'golden balls' across haunted spots",
       "Aira and the Acrobatic Silky join the chaotic cast",
       "a trip to a cursed village tests the new team"],
      us="2022-11-01", ja="ダンダダン", kana="ダンダダン"),
    S("Food Wars!: Shokugeki no Soma", "Yuto Tsukuda, Shun Saeki", "shonen", ["cooking", "comedy", "school"], "2013-04-04", 5, 3,
      "Soma Yukihira, son of a diner cook, enrolls in Totsuki, an elite culinary academy where students settle disputes in cooking duels called shokugeki. With his improvised home-style dishes, he aims to surpass his father.",
      ["Soma enters Totsuki and moves into the Polar Star Dormitory",
       "a brutal training camp tests first-years with impossible cooking assignments",
       "the Autumn Elections put Soma's dishes in front of the academy's harshest judges",
       "the Moon Banquet Festival pits Soma against the Elite Ten"],
      us="2014-08-05", ja="食戟のソーマ", kana="しょくげきのソーマ"),
    S("Mob Psycho 100", "ONE", "shonen", ["action", "comedy", "supernatural"], "2012-12-19", 4, 4,
      "Shigeo 'Mob' Kageyama is a middle schooler with overwhelming psychic power who just wants to live a normal life. He works for the self-proclaimed psychic con man Reigen, while trying to keep his emotions from reaching 100%.",
      ["Mob helps Reigen exorcise spirits and befriends the body improvement club",
       "the Claw organisation targets Mob's brother Ritsu",
       "Mob and Reigen go up against the Claw's leader",
       "a cult of followers rises around the spirit Dimple"],
      us="2021-04-20", ja="モブサイコ100", kana="モブサイコひゃく"),
    S("Kuroko's Basketball", "Tadatoshi Fujimaki", "shonen", ["sports", "school", "comedy"], "2009-04-03", 4, 3,
      "Tetsuya Kuroko was the invisible sixth man of the legendary 'Generation of Miracles'. At Seirin High he teams up with the powerful Taiga Kagami to defeat his former teammates, each now the ace of a rival school.",
      ["Kuroko and Kagami join Seirin and face Kise's Kaijo",
       "Seirin battles Midorima's Shutoku in the Inter-High qualifiers",
       "the terrifying Aomine crushes Seirin and Kuroko rethinks his style",
       "the Winter Cup opens with the Generation of Miracles assembled"],
      us="2016-08-02", ja="黒子のバスケ", kana="くろこのバスケ"),
    S("Rurouni Kenshin", "Nobuhiro Watsuki", "shonen", ["action", "historical", "martial_arts", "romance"], "1994-09-02", 4, 3,
      "Himura Kenshin, once a legendary assassin of the Bakumatsu era, wanders Meiji Japan with a reverse-blade sword, vowing never to kill again. He finds a home at Kaoru Kamiya's struggling dojo, but his past keeps returning.",
      ["Kenshin defends Kaoru's dojo and meets the street fighter Sanosuke",
       "the Oniwabanshu and Aoshi Shinomori come for Kenshin",
       "Kenshin leaves for Kyoto to stop his successor assassin, Makoto Shishio"],
      us="2003-10-07", ja="るろうに剣心 -明治剣客浪漫譚-", kana="るろうにけんしん"),
    S("Inuyasha", "Rumiko Takahashi", "shonen", ["action", "adventure", "fantasy", "romance", "isekai"], "1997-04-18", 4, 3,
      "Schoolgirl Kagome falls through an old well into feudal Japan, where she frees the half-demon Inuyasha and shatters the powerful Shikon Jewel. The bickering pair must recover its shards before demons like Naraku can use them.",
      ["Kagome frees Inuyasha and the Shikon Jewel is shattered",
       "Inuyasha battles his half-brother Sesshomaru over their father's sword Tessaiga",
       "Miroku and Sango join the hunt for Naraku"],
      us="2003-10-07", ja="犬夜叉", kana="いぬやしゃ"),
    S("Ranma 1/2", "Rumiko Takahashi", "shonen", ["comedy", "martial_arts", "romance"], "1988-04-15", 3, 3,
      "Martial artist Ranma Saotome fell into a cursed spring in China and now turns into a girl whenever splashed with cold water. Back in Tokyo, he is engaged by his father to the short-tempered Akane Tendo, and rivals pile up fast.",
      ["Ranma arrives at the Tendo dojo with his panda-cursed father",
       "the Chinese Amazon Shampoo and the lost boy Ryoga come after Ranma",
       "Furinkan High's oddballs challenge Ranma to ever sillier martial arts"],
      us="2003-03-05", ja="らんま1/2", kana="らんまにぶんのいち"),
    S("Detective Conan", "Gosho Aoyama", "shonen", ["mystery", "comedy"], "1994-06-18", 5, 3,
      "Teen detective Shinichi Kudo is poisoned by a shadowy syndicate and shrinks into a child's body. Under the name Conan Edogawa, he secretly solves cases for the bumbling detective Kogoro Mori while hunting the Black Organization.",
      ["Shinichi is poisoned and becomes Conan Edogawa",
       "Conan solves locked-room murders from behind Kogoro's back",
       "the Detective Boys form and the phantom thief Kid makes an appearance",
       "a new transfer student named Ai Haibara brings news of the Black Organization"],
      us="2004-09-14", ja="名探偵コナン", kana="めいたんていコナン"),
    S("Hell's Paradise: Jigokuraku", "Yuji Kaku", "shonen", ["action", "historical", "supernatural", "horror"], "2018-06-04", 4, 3,
      "Gabimaru the Hollow, a legendary ninja assassin sentenced to death, is offered a pardon if he can find the elixir of life on a mysterious island. There he faces monstrous gods, fellow convicts and his executioner escort, Sagiri.",
      ["Gabimaru and Sagiri land on the island with other condemned criminals",
       "the island's bizarre creatures and flower-headed guardians appear",
       "convicts and executioners form uneasy alliances against the Tensen"],
      us="2020-07-21", ja="地獄楽", kana="じごくらく"),
    S("Sakamoto Days", "Yuto Suzuki", "shonen", ["action", "comedy"], "2021-04-02", 5, 3,
      "Taro Sakamoto was the greatest hitman alive until he fell in love, retired, gained a lot of weight and opened a convenience store. When his past comes calling, he must protect his family without ever breaking his no-killing rule.",
      ["Sakamoto and his mind-reading clerk Shin fend off hitmen at the store",
       "a billion-yen bounty on Sakamoto draws killers from everywhere",
       "the crew infiltrates the assassin academy JCC",
       "the Order, the assassin world's elite, takes an interest"],
      us="2022-09-06", ja="SAKAMOTO DAYS", kana="サカモトデイズ"),
    S("Fire Force", "Atsushi Ohkubo", "shonen", ["action", "sci_fi", "supernatural"], "2015-12-17", 4, 3,
      "In a Tokyo where people spontaneously combust into fiery monsters, Shinra Kusakabe joins Special Fire Force Company 8, an elite firefighting unit. Nicknamed 'the devil's footprints', he wants to be a hero and learn the truth behind the fire that killed his family.",
      ["Shinra joins Company 8 and meets his rival Arthur",
       "Company 8 investigates the secrets of the other companies",
       "the Evangelist's followers target Shinra's lost brother Sho"],
      us="2017-02-14", ja="炎炎ノ消防隊", kana="えんえんのしょうぼうたい"),
    S("Astro Boy", "Osamu Tezuka", "shonen", ["sci_fi", "action"], "1953-07-01", 3, 4,
      "A brilliant scientist builds the robot boy Astro to replace his dead son, then rejects him. Taken in by the kind Professor Ochanomizu, Astro uses his seven powers to protect both humans and robots in a future full of prejudice.",
      ["Astro is born and finds a new home with Professor Ochanomizu",
       "Astro stands up for robot rights in a series of classic episodes",
       "the legendary 'Greatest Robot on Earth' story pits Astro against Pluto"],
      us="2002-04-17", fmt="deluxe", ja="鉄腕アトム", kana="てつわんアトム"),
    S("Cells at Work!", "Akane Shimizu", "shonen", ["comedy", "sci_fi", "workplace"], "2015-07-10", 3, 4,
      "Inside the human body, trillions of cells work as ordinary staff: a directionally challenged Red Blood Cell delivers oxygen while a stern White Blood Cell fights off germs. Each chapter turns a real bodily process into a workplace adventure.",
      ["a scrape wound and a pneumococcus invasion introduce the body's workforce",
       "the cells battle influenza, heatstroke and a cedar pollen allergy",
       "cancer cells and bacteria test the immune system's teamwork"],
      us="2016-12-06", ja="はたらく細胞", kana="はたらくさいぼう"),
    S("Yotsuba&!", "Kiyohiko Azuma", "shonen", ["comedy", "slice_of_life"], "2003-08-27", 5, 8,
      "Five-year-old Yotsuba moves to a new town with her laid-back adoptive father and discovers the world one ordinary wonder at a time. Her neighbours, the three Ayase sisters, become her guides to everything from air conditioners to fireworks.",
      ["Yotsuba moves in and meets the Ayase sisters next door",
       "Yotsuba discovers cicadas, swings and a very big cardboard robot",
       "a trip to the ranch and a first camping trip",
       "Yotsuba helps bake a cake and learns to ride a bicycle"],
      us="2009-09-22", ja="よつばと!", kana="よつばと"),
    # ------------------------------------------------------------------ seinen
    S("One-Punch Man", "ONE, Yusuke Murata", "seinen", ["action", "comedy", "sci_fi"], "2012-12-04", 6, 4,
      "Saitama trained so hard he can defeat any enemy with a single punch, and now he is bored out of his mind. He joins the Hero Association with his cyborg disciple Genos, only to find that nobody recognises his strength.",
      ["Saitama meets Genos and fights the House of Evolution",
       "Saitama registers with the Hero Association at the lowest rank",
       "the Deep Sea King attacks City J while Saitama is late",
       "a giant alien mothership descends on City A",
       "the hero hunter Garou begins his rampage"],
      us="2015-09-01", ja="ワンパンマン", kana="ワンパンマン"),
    S("Tokyo Ghoul", "Sui Ishida", "seinen", ["action", "horror", "psychological", "supernatural"], "2012-02-17", 5, 3,
      "College student Ken Kaneki survives an attack by a ghoul, a creature that eats human flesh, only to wake up half-ghoul after a transplant. Caught between two worlds, he finds refuge at the coffee shop Anteiku.",
      ["Kaneki becomes half-ghoul and learns Anteiku's rules",
       "ghoul investigators from the CCG close in on the 20th Ward",
       "the Aogiri Tree organisation abducts Kaneki",
       "Kaneki is reborn after his torture and leaves Anteiku behind"],
      us="2015-06-16", ja="東京喰種トーキョーグール", kana="トーキョーグール"),
    S("Berserk", "Kentaro Miura", "seinen", ["action", "fantasy", "horror", "drama"], "1990-11-26", 6, 5,
      "Guts, a mercenary swordsman with a massive blade and an iron arm, hunts demonic apostles while branded for sacrifice. His story reaches back to his years with Griffith's Band of the Hawk, a bond that ended in unspeakable betrayal.",
      ["the Black Swordsman hunts apostles in a grim medieval world",
       "the Golden Age begins as young Guts joins Griffith's Band of the Hawk",
       "the Hawks rise to glory in the Hundred Year War",
       "Griffith's fall sets the stage for the Eclipse",
       "Guts returns to his hunt with Casca's safety at stake"],
      us="2003-10-22", fmt="big", ja="ベルセルク", kana="ベルセルク"),
    S("Vinland Saga", "Makoto Yukimura", "seinen", ["action", "adventure", "historical", "drama"], "2006-04-21", 5, 5,
      "Thorfinn grows up among Viking warriors seeking revenge on Askeladd, the mercenary leader who killed his father. His journey across eleventh-century Europe slowly turns from a quest for vengeance into a search for a land without war.",
      ["young Thorfinn fights for Askeladd's company, waiting for a fair duel",
       "Askeladd's men become entangled in the fate of Prince Canute",
       "enslaved on a Danish farm, Thorfinn befriends Einar and begins to change",
       "Thorfinn sets out to build a peaceful settlement in Vinland"],
      us="2013-12-10", fmt="deluxe", ja="ヴィンランド・サガ", kana="ヴィンランドサガ"),
    S("Monster", "Naoki Urasawa", "seinen", ["mystery", "psychological", "thriller", "drama"], "1995-06-30", 4, 5,
      "In 1986 Düsseldorf, brilliant Japanese surgeon Kenzo Tenma saves a young boy instead of the mayor. Years later, he learns that boy grew into Johan, a charming serial killer, and Tenma flees across Germany to stop him.",
      ["Tenma saves the boy Johan and his career collapses after mysterious murders",
       "Tenma follows Johan's trail while Inspector Lunge hunts Tenma",
       "Johan's twin sister Nina searches for the truth about their past",
       "the trail leads to the orphanage Kinderheim 511"],
      us="2014-07-15", fmt="deluxe", ja="MONSTER", kana="モンスター"),
    S("20th Century Boys", "Naoki Urasawa", "seinen", ["mystery", "sci_fi", "thriller"], "2000-01-29", 4, 5,
      "Convenience store manager Kenji discovers that a cult leader known as 'Friend' is acting out the apocalyptic scenario he and his friends invented as children. Kenji reunites his old gang to stop the end of the world they imagined.",
      ["Kenji realises the Friend is using his childhood 'book of prophecy'",
       "the gang gathers before the Bloody New Year's Eve",
       "years later, Kenji's niece Kanna fights the Friend's regime"],
      us="2018-05-15", fmt="deluxe", ja="20世紀少年", kana="にじっせいきしょうねん"),
    S("Vagabond", "Takehiko Inoue", "seinen", ["action", "historical", "martial_arts", "drama"], "1999-03-23", 5, 6,
      "Based on Eiji Yoshikawa's novel, Vagabond follows the young and savage Takezo as he becomes the legendary swordsman Miyamoto Musashi. After surviving the battle of Sekigahara, he wanders Japan seeking strength and the meaning of being invincible.",
      ["Takezo survives Sekigahara and returns home as a hunted outlaw",
       "Musashi challenges the Yoshioka school in Kyoto",
       "at Hozoin temple Musashi faces the spearman Inshun",
       "Kojiro Sasaki's deaf swordsman story unfolds in parallel"],
      us="2008-06-03", fmt="big", ja="バガボンド", kana="バガボンド"),
    S("Kingdom", "Yasuhisa Hara", "seinen", ["action", "historical", "drama"], "2006-06-19", 5, 3,
      "During China's Warring States period, war orphan Xin dreams of becoming the greatest general under the heavens. He allies with young King Ying Zheng, the future first emperor, in a campaign to unify the land.",
      ["Xin meets Ying Zheng and helps him reclaim the throne",
       "Xin fights his first battle as a foot soldier at Dakan Plains",
       "Xin's Hi Shin Unit takes shape under General Ou Ki",
       "the coalition army of six states marches on Qin"],
      stores="jp", fmt="big", ja="キングダム", kana="キングダム"),
    S("Golden Kamuy", "Satoru Noda", "seinen", ["action", "adventure", "historical", "comedy", "cooking"], "2015-01-19", 5, 4,
      "In early-1900s Hokkaido, Russo-Japanese War veteran 'Immortal' Sugimoto hears of a stash of Ainu gold whose map is tattooed on escaped convicts. He teams up with Asirpa, a young Ainu hunter, while soldiers and outlaws chase the same prize.",
      ["Sugimoto meets Asirpa and learns of the tattooed convicts",
       "Lieutenant Tsurumi's 7th Division closes in",
       "the legendary Hijikata Toshizo enters the race for the gold",
       "the hunters head to the prison at Abashiri"],
      us="2017-06-20", ja="ゴールデンカムイ", kana="ゴールデンカムイ"),
    S("Oshi no Ko", "Aka Akasaka, Mengo Yokoyari", "seinen", ["drama", "mystery", "psychological", "music"], "2020-07-17", 5, 4,
      "A country doctor who idolises the pop star Ai Hoshino is reborn as one of her secret twins. When Ai is murdered, her son Aqua dives into the entertainment industry to find the man responsible, while his sister Ruby chases her idol dream.",
      ["the twins are born to Ai and witness her tragic death",
       "Aqua and Ruby enter showbiz on a reality dating show",
       "a stage adaptation brings Aqua closer to the truth",
       "Ruby's idol group B-Komachi rises"],
      us="2023-06-13", ja="【推しの子】", kana="おしのこ"),
    S("Kaguya-sama: Love Is War", "Aka Akasaka", "seinen", ["romance", "comedy", "school"], "2016-03-18", 5, 3,
      "Student council president Miyuki Shirogane and vice president Kaguya Shinomiya are clearly in love, but each is too proud to confess first. Their daily schemes to make the other admit it turn into absurd battles of wits.",
      ["the council's mind games begin over movie tickets and lunch boxes",
       "summer plans collapse into fireworks and missed chances",
       "the school festival approaches and the council prepares for elections",
       "the council recruits Miko Iino and Ishigami faces his past"],
      us="2018-03-06", ja="かぐや様は告らせたい～天才たちの恋愛頭脳戦～", kana="かぐやさまはこくらせたい"),
    S("Tokyo Revengers", "Ken Wakui", "shonen", ["action", "drama", "sci_fi"], "2017-05-17", 4, 3,
      "Takemichi Hanagaki, a 26-year-old loser, learns that his middle-school girlfriend Hinata was killed by the Tokyo Manji Gang. After being pushed in front of a train, he finds himself twelve years in the past and sets out to change the future.",
      ["Takemichi leaps back in time and meets Mikey and Draken",
       "the August 3rd fight threatens Draken's life",
       "the Bloody Halloween clash with Valhalla"],
      us="2022-06-14", ja="東京卍リベンジャーズ", kana="とうきょうリベンジャーズ"),
    S("Parasyte", "Hitoshi Iwaaki", "seinen", ["horror", "sci_fi", "action", "psychological"], "1990-07-23", 4, 6,
      "Alien parasites arrive on Earth and take over human brains, but the one that targets high schooler Shinichi Izumi only gets as far as his right hand. Named Migi, it becomes his uneasy partner as the two fight other parasites.",
      ["Shinichi and Migi learn to coexist as parasites start feeding",
       "the parasite Reiko Tamura experiments with raising a human child",
       "the parasites organise inside city hall",
       "the monstrous Gotou, a multi-parasite body, hunts Shinichi"],
      us="2011-05-10", ja="寄生獣", kana="きせいじゅう"),
    S("Akira", "Katsuhiro Otomo", "seinen", ["sci_fi", "action", "psychological"], "1984-09-21", 3, 12,
      "In Neo-Tokyo, rebuilt after a mysterious explosion, biker gang leader Kaneda sees his friend Tetsuo awakened to terrifying psychic powers by a secret military project. As Tetsuo spirals out of control, the name Akira resurfaces.",
      ["Tetsuo's crash sets off a chain of events with the army and the Espers",
       "Tetsuo breaks out of the lab and searches for Akira",
       "Neo-Tokyo collapses as Akira awakens"],
      us="2009-10-13", fmt="deluxe", ja="AKIRA", kana="アキラ"),
    S("Ghost in the Shell", "Masamune Shirow", "seinen", ["sci_fi", "action", "psychological", "thriller"], "1991-10-02", 2, 36,
      "In a near future of cybernetic bodies and networked brains, Major Motoko Kusanagi leads Public Security Section 9 against cyber-terrorists. Her hunt for the hacker known as the Puppet Master raises questions about what makes a person.",
      ["Section 9 hunts the elusive Puppet Master",
       "Motoko, now merged with the net, investigates a new conspiracy"],
      us="2009-10-13", fmt="deluxe", ja="攻殻機動隊", kana="こうかくきどうたい"),
    S("Mushishi", "Yuki Urushibara", "seinen", ["supernatural", "slice_of_life", "fantasy", "historical"], "2000-11-22", 4, 8,
      "Ginko is a wandering mushi master who investigates mushi, primitive life-forms invisible to most people that can cause strange phenomena. Travelling through rural Japan, he helps villagers whose lives have been touched by them.",
      ["Ginko meets villagers affected by mushi that devour sound and light",
       "a swamp that wanders and a rainbow that must be caught",
       "Ginko's own past with the mushi called Tokoyami"],
      us="2007-03-27", ja="蟲師", kana="むしし"),
    S("Blue Period", "Tsubasa Yamaguchi", "seinen", ["drama", "school", "slice_of_life"], "2017-12-22", 5, 5,
      "Yatora Yaguchi is a popular high schooler who gets good grades but feels empty, until a painting in the art room moves him. He decides to aim for Tokyo University of the Arts, the hardest art school in Japan to get into.",
      ["Yatora discovers painting and joins the art club",
       "prep school classes show Yatora how far behind he is",
       "the entrance exam for Tokyo University of the Arts",
       "Yatora starts university and questions what art means to him"],
      us="2020-11-03", ja="ブルーピリオド", kana="ブルーピリオド"),
    S("Witch Hat Atelier", "Kamome Shirahama", "seinen", ["fantasy", "adventure"], "2016-07-22", 5, 8,
      "Coco has always dreamed of magic, but in her world only born witches are allowed to cast spells. When she learns that magic is drawn with ink, she accidentally changes her life and becomes the apprentice of the witch Qifrey.",
      ["Coco discovers the secret of magic and becomes Qifrey's apprentice",
       "Coco and her fellow apprentices take their first test",
       "the Brimmed Caps, wielders of forbidden magic, take an interest in Coco",
       "a trip to the magic market ends in danger"],
      us="2019-04-09", ja="とんがり帽子のアトリエ", kana="とんがりぼうしのアトリエ"),
    S("Delicious in Dungeon", "Ryoko Kui", "seinen", ["fantasy", "adventure", "cooking", "comedy"], "2015-01-15", 5, 7,
      "When a red dragon swallows his sister Falin, adventurer Laios heads back into the dungeon with no money for supplies. To survive, his party eats the monsters they kill, with help from the dwarf gourmet Senshi.",
      ["the party cooks giant scorpions and walking mushrooms on their way down",
       "the party learns to cook a living armour and mandrake",
       "the party reaches the red dragon",
       "the true nature of the dungeon and its Mad Mage comes into view"],
      us="2017-05-23", ja="ダンジョン飯", kana="ダンジョンめし"),
    S("Mushoku Tensei: Jobless Reincarnation", "Rifujin na Magonote, Yuka Fujikawa", "seinen", ["isekai", "fantasy", "adventure"], "2014-05-23", 4, 6,
      "A 34-year-old shut-in dies and is reborn as Rudeus Greyrat in a world of swords and sorcery, keeping the memories of his past life. Determined not to waste this second chance, he trains in magic from infancy.",
      ["baby Rudeus discovers his talent for magic under Roxy",
       "Rudeus tutors the short-tempered noble girl Eris",
       "a magical disaster teleports Rudeus and Eris to the Demon Continent"],
      us="2019-05-21", ja="無職転生 ～異世界行ったら本気だす～", kana="むしょくてんせい"),
    S("That Time I Got Reincarnated as a Slime", "Fuse, Taiki Kawakami", "shonen", ["isekai", "fantasy", "comedy", "adventure"], "2015-10-02", 5, 4,
      "An ordinary office worker stabbed on the street is reborn in a fantasy world as a slime with the power to devour and copy. Naming himself Rimuru, he befriends a sealed dragon and begins building a nation of monsters.",
      ["Rimuru is reborn as a slime and befriends the Storm Dragon Veldora",
       "Rimuru names the goblins and founds a monster village",
       "the orc lord threatens the forest and the lizardmen",
       "Rimuru's nation Tempest opens relations with the human kingdoms"],
      us="2017-09-26", ja="転生したらスライムだった件", kana="てんせいしたらスライムだったけん"),
    S("The Apothecary Diaries", "Natsu Hyuuga, Nekokurage", "seinen", ["mystery", "historical", "drama"], "2017-09-25", 5, 5,
      "Maomao, a pharmacist's daughter kidnapped and sold into the imperial rear palace, plans to keep her head down until her servitude ends. When her knowledge of poisons saves the emperor's children, the beautiful eunuch Jinshi makes her his pet detective.",
      ["Maomao solves the mystery of the dying imperial infants",
       "Maomao becomes food taster to the consort Gyokuyou",
       "a string of incidents at the garden party points to a poisoner",
       "Maomao returns to the pleasure district and is summoned back"],
      us="2021-12-07", ja="薬屋のひとりごと", kana="くすりやのひとりごと"),
    S("Nausicaä of the Valley of the Wind", "Hayao Miyazaki", "seinen", ["sci_fi", "adventure", "fantasy"], "1983-08-15", 3, 12,
      "A thousand years after an industrial apocalypse, a toxic jungle covers the earth and giant insects guard it. Princess Nausicaä of a small valley kingdom tries to understand the forest while warring empires drag her into their conflict.",
      ["Nausicaä befriends the insects and the war with Tolmekia begins",
       "Nausicaä flies south toward the Dorok lands",
       "the secret of the toxic jungle is revealed"],
      us="2004-11-10", fmt="deluxe", ja="風の谷のナウシカ", kana="かぜのたにのナウシカ"),
    S("Lone Wolf and Cub", "Kazuo Koike, Goseki Kojima", "seinen", ["action", "historical", "drama"], "1970-12-01", 3, 12,
      "Framed for treason, the shogun's executioner Ogami Itto walks the road of vengeance as an assassin for hire, pushing his infant son Daigoro in a weapon-laden baby cart. Their journey across Edo Japan is a cycle of blood and quiet tenderness.",
      ["Ogami Itto takes his first contracts as the Lone Wolf",
       "the Yagyu clan sends assassins after father and son",
       "Daigoro faces the world on his own for the first time"],
      us="2000-09-06", fmt="deluxe", ja="子連れ狼", kana="こづれおおかみ"),
    S("Uzumaki", "Junji Ito", "seinen", ["horror", "psychological", "supernatural"], "1998-08-28", 3, 5,
      "The small seaside town of Kurouzu-cho is cursed not by a man or a ghost but by a shape: the spiral. Kirie Goshima and her boyfriend Shuichi watch the townspeople become obsessed, transformed and consumed by spirals.",
      ["Shuichi's father becomes obsessed with spirals",
       "snail people and whirlwinds spread through Kurouzu-cho",
       "the town is swallowed by the spiral"],
      us="2001-10-10", ja="うずまき", kana="うずまき"),
    S("Blue Giant", "Shinichi Ishizuka", "seinen", ["music", "drama"], "2013-08-30", 4, 4,
      "Dai Miyamoto, a high schooler from Sendai, falls in love with jazz and practises the tenor saxophone alone by a river every day. Determined to become the greatest jazz player in the world, he heads to Tokyo to form a band.",
      ["Dai picks up the saxophone and plays alone by the river",
       "Dai moves to Tokyo and meets the pianist Yukinori",
       "the band JASS aims for the legendary club So Blue"],
      stores="jp", fmt="big", ja="BLUE GIANT", kana="ブルージャイアント"),
    S("What Did You Eat Yesterday?", "Fumi Yoshinaga", "seinen", ["cooking", "slice_of_life", "romance", "drama"], "2007-11-22", 4, 10,
      "Meticulous lawyer Shiro Kakei and his easy-going hairdresser partner Kenji share a small Tokyo apartment and, every evening, a carefully budgeted home-cooked meal. Each chapter pairs a step-by-step recipe with the quiet realities of a middle-aged gay couple's life.",
      ["Shiro plans budget dinners while keeping his private life hidden at work",
       "Kenji meets Shiro's parents for New Year",
       "the couple plans for growing old together"],
      us="2014-04-29", ja="きのう何食べた?", kana="きのうなにたべた"),
    S("Laid-Back Camp", "Afro", "seinen", ["slice_of_life", "comedy"], "2015-07-24", 4, 5,
      "Rin Shima likes camping alone in winter near Mount Fuji, until the cheerful Nadeshiko stumbles into her campsite. Through the Outdoor Activities Club, the girls discover the joys of winter camping, hot soup and quiet views.",
      ["Rin and Nadeshiko meet at a lakeside campsite",
       "the Outdoor Activities Club plans its first group camp",
       "a Christmas camp under Mount Fuji"],
      us="2018-07-24", ja="ゆるキャン△", kana="ゆるキャン"),
    S("Bocchi the Rock!", "Aki Hamaji", "seinen", ["music", "comedy", "slice_of_life"], "2019-02-27", 3, 8,
      "Hitori Gotoh is a painfully shy guitar prodigy who posts covers online but cannot talk to people. When she is pulled into the Kessoku Band, she must face live shows, part-time jobs and school festivals.",
      ["Bocchi joins the Kessoku Band as a last-minute guitarist",
       "the band recruits vocalist Ikuyo Kita and plays its first live audition",
       "the school festival stage puts Bocchi in the spotlight"],
      us="2023-04-18", ja="ぼっち・ざ・ろっく!", kana="ぼっちざろっく"),
    S("March Comes in Like a Lion", "Chica Umino", "seinen", ["drama", "slice_of_life", "psychological"], "2008-03-19", 4, 8,
      "Rei Kiriyama, a seventeen-year-old professional shogi player, lives alone in Tokyo, haunted by his past. The warm Kawamoto sisters draw him out of his isolation as he struggles with his own place in the game.",
      ["Rei meets the Kawamoto sisters and rediscovers home-cooked meals",
       "Rei faces his adoptive sister Kyoko and the shogi titleholders",
       "Rei stands by Hina as she confronts bullying at school"],
      us="2017-03-21", ja="3月のライオン", kana="さんがつのライオン"),
    S("The Way of the Househusband", "Kousuke Oono", "seinen", ["comedy", "slice_of_life", "cooking"], "2018-10-09", 4, 6,
      "Tatsu 'the Immortal Dragon', a legendary yakuza, quits organised crime to become a full-time househusband for his career-woman wife. He brings the same terrifying intensity to bargain sales, bento making and neighbourhood watch.",
      ["Tatsu masters the supermarket sale and character bentos",
       "a former underling tries to drag Tatsu back to the yakuza",
       "the neighbourhood housewives' volleyball tournament"],
      us="2019-09-17", ja="極主夫道", kana="ごくしゅふどう"),
    S("Oishinbo", "Tetsu Kariya, Akira Hanasaki", "seinen", ["cooking", "drama", "slice_of_life"], "1984-06-09", 3, 4,
      "Journalist Shiro Yamaoka is assigned to create the 'Ultimate Menu' for his newspaper's anniversary, while his estranged father, the gourmet Kaibara Yuzan, builds a rival 'Supreme Menu'. Their culinary feud explores Japanese food culture dish by dish.",
      ["Yamaoka begins the Ultimate Menu with the secrets of dashi",
       "Yamaoka and Yuzan clash over sake and seafood",
       "the 'Supreme Menu' rivalry moves to rice and vegetables"],
      stores="jp", ja="美味しんぼ", kana="おいしんぼ"),
    # ------------------------------------------------------------------ shojo
    S("Pretty Guardian Sailor Moon", "Naoko Takeuchi", "shojo", ["fantasy", "romance", "action", "school"], "1992-07-06", 5, 4,
      "Clumsy schoolgirl Usagi Tsukino meets a talking cat named Luna and learns she is Sailor Moon, a guardian of love and justice. Together with the other Sailor Guardians, she protects the Earth and searches for the lost Moon Princess.",
      ["Usagi becomes Sailor Moon and the Guardians assemble",
       "the mysterious Tuxedo Mask and the Dark Kingdom",
       "a pink-haired girl named Chibiusa falls from the sky",
       "the Black Moon Clan attacks from the future"],
      us="2011-09-13", ja="美少女戦士セーラームーン", kana="びしょうじょせんしセーラームーン"),
    S("Cardcaptor Sakura", "CLAMP", "shojo", ["fantasy", "romance", "comedy"], "1996-11-22", 4, 6,
      "Ten-year-old Sakura Kinomoto accidentally releases the magical Clow Cards from a book in her father's library. Guided by the guardian beast Kero and her camera-wielding best friend Tomoyo, she must capture them all.",
      ["Sakura opens the Clow Book and captures her first cards",
       "Syaoran Li arrives from Hong Kong as a rival Cardcaptor",
       "the Final Judgment with Yue",
       "Sakura's cards begin to change with the arrival of Eriol"],
      us="2019-05-07", fmt="deluxe", ja="カードキャプターさくら", kana="カードキャプターさくら"),
    S("Fruits Basket", "Natsuki Takaya", "shojo", ["romance", "drama", "supernatural", "comedy"], "1999-01-19", 5, 4,
      "Orphaned high schooler Tohru Honda is living in a tent when the wealthy Soma family takes her in. She discovers their secret: thirteen family members turn into animals of the zodiac when hugged by the opposite sex.",
      ["Tohru moves in with Yuki, Kyo and Shigure",
       "more cursed Sohmas, from Momiji to Hatori, enter Tohru's life",
       "a summer at the lake house shows the darkness of the family head Akito",
       "Kyo's true form is revealed"],
      us="2016-06-21", fmt="deluxe", ja="フルーツバスケット", kana="フルーツバスケット"),
    S("Ouran High School Host Club", "Bisco Hatori", "shojo", ["romance", "comedy", "school"], "2003-08-05", 4, 4,
      "Scholarship student Haruhi Fujioka breaks an 8-million-yen vase belonging to the Ouran Academy host club. Mistaken for a boy, she must work off the debt as a host entertaining wealthy girls.",
      ["Haruhi breaks the vase and joins the host club",
       "the club's beach trip and a rival host club from Lobelia",
       "Tamaki's family background comes into play"],
      us="2005-04-05", ja="桜蘭高校ホスト部", kana="おうらんこうこうホストクラブ"),
    S("Kimi ni Todoke: From Me to You", "Karuho Shiina", "shojo", ["romance", "school", "slice_of_life"], "2006-05-25", 4, 4,
      "Sawako Kuronuma is shy and kind, but classmates call her 'Sadako' after a horror-film ghost. When the popular Kazehaya starts talking to her, she slowly makes friends and discovers first love.",
      ["Sawako makes her first friends, Yano and Yoshida",
       "misunderstandings at the school festival",
       "Sawako and Kazehaya try to put their feelings into words"],
      us="2009-12-01", ja="君に届け", kana="きみにとどけ"),
    S("Nana", "Ai Yazawa", "shojo", ["romance", "drama", "music"], "2000-05-15", 5, 5,
      "Two twenty-year-old women named Nana meet on a train to Tokyo: the punk singer Nana Osaki and the romantic, dependent Nana Komatsu. Sharing apartment 707, they become best friends as their loves and careers pull them in different directions.",
      ["the two Nanas meet and move into apartment 707",
       "the Black Stones regroup and rival band Trapnest enters the picture",
       "Hachi's love life changes everything",
       "Blast's debut brings fame and danger"],
      us="2005-12-06", ja="NANA", kana="ナナ"),
    S("Yona of the Dawn", "Mizuho Kusanagi", "shojo", ["fantasy", "adventure", "romance", "historical"], "2009-08-05", 5, 4,
      "Sheltered Princess Yona's life is shattered when her beloved cousin Su-won murders her father and takes the throne. Fleeing with her loyal bodyguard Hak, she sets out to find the four legendary dragon warriors.",
      ["Yona flees the palace with Hak",
       "Yona meets the White Dragon and the Blue Dragon",
       "the Green Dragon Jae-ha and the Yellow Dragon Zeno join",
       "Yona confronts the corruption of the Water Tribe"],
      us="2016-08-02", ja="暁のヨナ", kana="あかつきのヨナ"),
    S("Skip Beat!", "Yoshiki Nakamura", "shojo", ["romance", "comedy", "drama"], "2003-07-18", 4, 4,
      "Kyoko Mogami worked herself to the bone supporting her childhood friend Sho, only to learn he was using her on his way to pop stardom. Furious, she enters show business to beat him at his own game.",
      ["Kyoko is dumped by Sho and enters the LME talent agency",
       "Kyoko joins the Love Me section and starts acting",
       "Kyoko's first drama role puts her opposite top actor Ren Tsuruga"],
      us="2006-07-05", ja="スキップ・ビート!", kana="スキップビート"),
    S("Vampire Knight", "Matsuri Hino", "shojo", ["romance", "supernatural", "drama"], "2005-05-02", 4, 5,
      "At Cross Academy, human students attend the day class while vampires attend the night class. Yuki Cross guards the secret alongside Zero, a vampire-hating vampire hunter, while feeling drawn to the pureblood Kaname.",
      ["Yuki and Zero guard the secret of the night class",
       "Zero's dark secret comes out",
       "a pureblood appears and the past of Yuki is revealed"],
      us="2007-02-06", ja="ヴァンパイア騎士", kana="ヴァンパイアナイト"),
    S("Fushigi Yugi", "Yuu Watase", "shojo", ["fantasy", "romance", "adventure", "isekai"], "1992-05-15", 3, 4,
      "Middle schooler Miaka Yuki is pulled into an old book, 'The Universe of the Four Gods', and becomes the Priestess of Suzaku. She must gather seven celestial warriors to summon the god and grant her wishes.",
      ["Miaka enters the book and meets the warrior Tamahome",
       "Miaka's best friend Yui becomes the Priestess of Seiryu",
       "the race to summon the gods reaches a climax"],
      us="2003-03-05", ja="ふしぎ遊☆戯", kana="ふしぎゆうぎ"),
    S("The Rose of Versailles", "Riyoko Ikeda", "shojo", ["historical", "romance", "drama"], "1972-12-01", 3, 12,
      "Oscar François de Jarjayes, raised as a man to command the royal guard, protects Marie Antoinette at the court of Versailles. As the French Revolution approaches, Oscar must choose between her duty and her ideals.",
      ["Marie Antoinette arrives at Versailles and Oscar becomes her guard",
       "the affair of the diamond necklace shakes the court",
       "the Revolution reaches the Bastille"],
      us="2020-07-28", fmt="deluxe", ja="ベルサイユのばら", kana="ベルサイユのばら"),
    S("Banana Fish", "Akimi Yoshida", "shojo", ["action", "drama", "thriller"], "1986-05-10", 3, 6,
      "Ash Lynx, a brilliant teenage gang leader in New York, investigates the words 'banana fish' murmured by his war-veteran brother. Joined by the gentle Japanese photographer's assistant Eiji, he uncovers a drug conspiracy reaching the top.",
      ["Ash hears the words banana fish and meets Eiji",
       "Ash is betrayed by his mentor Dino Golzine",
       "the conspiracy spreads to the highest levels of government"],
      us="2004-05-04", ja="BANANA FISH", kana="バナナフィッシュ"),
    S("Kamisama Kiss", "Julietta Suzuki", "shojo", ["romance", "supernatural", "comedy"], "2008-12-05", 4, 4,
      "Homeless after her father skips town, Nanami Momozono accidentally becomes the new land god of a shrine. She must learn the job with the help of Tomoe, a rude but beautiful fox yokai bound to serve her.",
      ["Nanami becomes a land god and makes Tomoe her familiar",
       "a snake yokai and a crow tengu complicate Nanami's life",
       "Nanami travels back in time to learn Tomoe's past"],
      us="2010-07-06", ja="神様はじめました", kana="かみさまはじめました"),
    S("Boys Over Flowers", "Yoko Kamio", "shojo", ["romance", "comedy", "drama", "school"], "1992-10-24", 3, 4,
      "Working-class Tsukushi Makino attends an elite academy ruled by the F4, four rich boys who bully anyone who crosses them. When she stands up to their leader, Tsukasa, he falls for her.",
      ["Tsukushi declares war on the F4",
       "Tsukasa's feelings for Tsukushi surface",
       "Tsukasa's mother moves to separate the couple"],
      us="2003-08-05", ja="花より男子", kana="はなよりだんご"),
    S("Horimiya", "HERO, Daisuke Hagiwara", "shonen", ["romance", "comedy", "school", "slice_of_life"], "2012-03-22", 4, 4,
      "Popular Kyoko Hori is secretly a homebody who looks after her little brother, while gloomy classmate Izumi Miyamura hides piercings and tattoos. When they discover each other's other side, an unlikely friendship grows into romance.",
      ["Hori and Miyamura discover each other's hidden sides",
       "friends from class start to notice the pair",
       "Miyamura talks about his lonely middle-school years"],
      us="2015-10-27", ja="ホリミヤ", kana="ホリミヤ"),
    S("Komi Can't Communicate", "Tomohito Oda", "shonen", ["comedy", "romance", "school", "slice_of_life"], "2016-09-16", 5, 3,
      "Shoko Komi is the school's most beautiful girl, but she has severe social anxiety and can barely speak. Her classmate Tadano, who notices her struggle, helps her toward her goal of making one hundred friends.",
      ["Tadano and Komi communicate through the blackboard",
       "Komi's class gains some very strange friends",
       "a culture festival and Christmas party test Komi's nerves",
       "second year brings new classmates"],
      us="2019-05-14", ja="古見さんは、コミュ症です。", kana="こみさんはコミュしょうです"),
    S("A Silent Voice", "Yoshitoki Oima", "shonen", ["drama", "romance", "school", "psychological"], "2013-11-15", 4, 3,
      "In elementary school, Shoya Ishida bullied the deaf transfer student Shoko Nishimiya until she moved away. Years later, isolated and guilt-ridden, he learns sign language and seeks her out to make amends.",
      ["Shoya's bullying of Shoko and its consequences",
       "Shoya reconnects with Shoko through sign language",
       "old classmates return and the past resurfaces"],
      us="2015-05-26", ja="聲の形", kana="こえのかたち"),
    S("Your Lie in April", "Naoshi Arakawa", "shonen", ["music", "romance", "drama", "school"], "2011-09-16", 4, 4,
      "Former piano prodigy Kosei Arima stopped hearing his own playing after his mother died. The free-spirited violinist Kaori Miyazono drags him back into music and into a spring that changes everything.",
      ["Kosei meets Kaori and agrees to accompany her",
       "Kosei enters the Maihou piano competition",
       "Kaori's secret weighs on the gala concert"],
      us="2015-04-14", ja="四月は君の嘘", kana="しがつはきみのうそ"),
    S("My Dress-Up Darling", "Shinichi Fukuda", "seinen", ["romance", "comedy", "slice_of_life"], "2018-07-19", 5, 4,
      "Wakana Gojo wants to make hina dolls like his grandfather, but keeps his hobby a secret. When the popular gyaru Marin Kitagawa discovers his sewing skills, she asks him to make her cosplay costumes.",
      ["Marin asks Gojo to sew her first cosplay",
       "photoshoots with the cosplaying sisters Juju and Shinju",
       "a summer cosplay event and a beach trip",
       "Gojo attempts his most ambitious costume yet"],
      us="2022-03-29", ja="その着せ替え人形は恋をする", kana="そのビスクドールはこいをする"),
    # ------------------------------------------------------------------ josei
    S("Nodame Cantabile", "Tomoko Ninomiya", "josei", ["music", "romance", "comedy"], "2002-01-11", 4, 4,
      "Elite music student Shinichi Chiaki dreams of conducting in Europe but fear of flying keeps him in Japan. His messy, brilliant neighbour Megumi 'Nodame' Noda, a pianist who plays only by ear, turns his life upside down.",
      ["Chiaki discovers Nodame's talent and her trash-filled apartment",
       "Chiaki forms the misfit S Orchestra",
       "Chiaki leads the R*S Orchestra"],
      us="2005-07-19", ja="のだめカンタービレ", kana="のだめカンタービレ"),
    S("Chihayafuru", "Yuki Suetsugu", "josei", ["sports", "drama", "romance", "school"], "2008-05-13", 5, 4,
      "Chihaya Ayase discovers competitive karuta, a fast-paced card game based on classical poetry, through her friend Arata. In high school she founds a karuta club and aims to become Queen, the best player in Japan.",
      ["Chihaya, Taichi and Arata play karuta as children",
       "Chihaya founds the Mizusawa High karuta club",
       "the club heads to the national tournament at Omi Jingu",
       "Chihaya challenges the reigning Queen Shinobu"],
      stores="jp", ja="ちはやふる", kana="ちはやふる"),
    S("Honey and Clover", "Chica Umino", "josei", ["romance", "drama", "slice_of_life", "comedy"], "2002-03-19", 3, 6,
      "A group of art college students share a cramped apartment building in Tokyo, chasing careers and unrequited love. When the tiny, gifted Hagu arrives, the friends' lives turn toward growing up.",
      ["Takemoto falls for Hagu and Mayama pursues Rika",
       "Takemoto sets off on a bicycle journey to find himself",
       "graduation forces every friend to choose a path"],
      us="2008-07-01", ja="ハチミツとクローバー", kana="ハチミツとクローバー"),
    S("Wotakoi: Love Is Hard for Otaku", "Fujita", "josei", ["romance", "comedy", "workplace"], "2015-04-30", 4, 6,
      "Office worker Narumi hides her fujoshi hobby at work until she runs into childhood friend Hirotaka, a gaming otaku. They start dating as two adults who understand each other's obsessions.",
      ["Narumi and Hirotaka start dating",
       "co-workers Hanako and Kabakura bicker about their own hobbies",
       "Hirotaka's brother Nao finds his own community"],
      us="2018-04-24", fmt="deluxe", ja="ヲタクに恋は難しい", kana="ヲタクにこいはむずかしい"),
    S("Usagi Drop", "Yumi Unita", "josei", ["slice_of_life", "drama"], "2006-05-01", 3, 8,
      "Thirty-year-old bachelor Daikichi attends his grandfather's funeral and learns of a six-year-old girl, Rin, whom the family refuses to take in. He decides to raise her himself.",
      ["Daikichi takes Rin in and learns parenting from scratch",
       "Rin starts school and Daikichi searches for her mother",
       "ten years later, a teenage Rin faces her future"],
      us="2010-07-19", ja="うさぎドロップ", kana="うさぎドロップ"),
    S("Paradise Kiss", "Ai Yazawa", "josei", ["romance", "drama"], "2000-03-01", 3, 6,
      "Studious high schooler Yukari is scouted as a model by fashion students designing their graduation collection. Drawn into their atelier, Paradise Kiss, she discovers independence and a difficult romance with the designer George.",
      ["Yukari is scouted and dragged into the atelier",
       "Yukari leaves home to pursue modelling",
       "the fashion show decides everyone's future"],
      us="2012-09-25", ja="Paradise Kiss", kana="パラダイスキス"),
    S("Princess Jellyfish", "Akiko Higashimura", "josei", ["comedy", "romance"], "2009-03-13", 3, 6,
      "Tsukimi, a jellyfish-obsessed otaku, lives in an all-female apartment building of social outcasts. Her world is upended by a fashionable beauty who turns out to be a cross-dressing politician's son.",
      ["Tsukimi meets Kuranosuke at a pet shop",
       "the Amars fight to save their building from redevelopment",
       "Tsukimi designs a jellyfish dress"],
      us="2016-06-28", fmt="deluxe", ja="海月姫", kana="くらげひめ"),
    # ------------------------------------------------------------------ kodomo
    S("Doraemon", "Fujiko F. Fujio", "kodomo", ["comedy", "sci_fi", "slice_of_life"], "1974-07-31", 5, 4,
      "Doraemon, a robot cat from the 22nd century, is sent back in time to help the lazy and unlucky schoolboy Nobita. From his four-dimensional pocket he pulls out gadgets that solve every problem and cause many more.",
      ["Doraemon arrives in Nobita's desk drawer",
       "the Anywhere Door and the Take-copter lead to trouble with Gian and Suneo",
       "Nobita tries gadgets to impress Shizuka",
       "time travel misadventures with the time machine"], ja="ドラえもん", kana="ドラえもん"),
    S("Pokémon Adventures", "Hidenori Kusaka, Mato", "kodomo", ["adventure", "fantasy"], "1997-08-08", 4, 5,
      "Red, a young trainer from Pallet Town, sets out to catch them all, and finds Team Rocket using Pokémon for evil. Based on the video games, each chapter follows a new Pokédex holder on a journey through a region.",
      ["Red receives his Pokédex and faces Team Rocket",
       "Red and Blue face the Gym Leaders of Kanto",
       "Yellow searches for the missing Red"],
      us="2009-07-07", ja="ポケットモンスタースペシャル", kana="ポケットモンスタースペシャル"),
    S("Yo-kai Watch", "Noriyuki Konishi", "kodomo", ["comedy", "supernatural"], "2013-02-15", 3, 5,
      "Nate receives a strange watch from the yokai Whisper that lets him see the mischievous spirits behind everyday problems. With the cat yokai Jibanyan, he befriends and summons yokai to set things right.",
      ["Nate meets Whisper and Jibanyan",
       "Nate befriends yokai responsible for a grumpy classmate",
       "legendary yokai appear in Springdale"],
      us="2015-09-01", ja="妖怪ウォッチ", kana="ようかいウォッチ"),
    S("Chi's Sweet Home", "Konami Kanata", "kodomo", ["comedy", "slice_of_life"], "2004-11-22", 4, 6,
      "A tiny grey kitten gets lost on a walk and is taken in by the Yamada family, who live in an apartment where pets are forbidden. Chi explores a world full of balls of yarn, vacuum cleaners and new friends.",
      ["Chi is found by Yohei and secretly adopted",
       "Chi meets the big black cat Blackie",
       "the Yamadas look for a pet-friendly home"],
      us="2010-06-01", ja="チーズスイートホーム", kana="チーズスイートホーム"),
    S("Kirby Manga Mania", "Hirokazu Hikawa", "kodomo", ["comedy", "adventure"], "1994-08-26", 3, 6,
      "Kirby, the pink puffball of Dream Land, floats through funny adventures with King Dedede and the Waddle Dees. Every short chapter is a gag story based on the video games.",
      ["Kirby and King Dedede compete at every turn",
       "Kirby copies new abilities for a Dream Land festival",
       "Meta Knight challenges Kirby"],
      stores="us", us="2019-06-11"),
    S("Hamtaro", "Ritsuko Kawai", "kodomo", ["comedy", "slice_of_life"], "1997-09-10", 2, 8,
      "Hamtaro, a curious little hamster, sneaks out while his owner Laura is at school to meet the Ham-Hams. Together they explore the neighbourhood and help each other in small adventures.",
      ["Hamtaro meets the Ham-Hams",
       "the Ham-Hams' clubhouse adventures"],
      stores="jp", ja="とっとこハム太郎", kana="とっとこハムたろう"),
]

# ---------------------------------------------------------------------------
# Product generation
# ---------------------------------------------------------------------------
CATALOG_CUTOFF = dt.date(2026, 11, 1)  # nothing in the catalog is released after this date

STAGE_PHRASES = {
    # (position of a volume inside an arc) -> sentence template
    "only": "In volume {vol}, {arc}.",
    "start": "Volume {vol} begins a new stage of the story: {arc}.",
    "middle": "In volume {vol} the tension keeps building as {arc}.",
    "end": "Volume {vol} brings the arc to a head as {arc}.",
}
EXTRAS = [
    "Includes a bonus short story and the author's sidebar notes.",
    "This edition includes colour pages from the original magazine run.",
    "Features character profiles and a preview of the next volume.",
    "Collects the chapters that fans often call a turning point of the series.",
    "Ends on a cliffhanger that leads straight into the next volume.",
    "Includes translation notes on cultural references.",
    "A quieter volume that spends time with the supporting cast.",
    "Packed with some of the series' most memorable fight scenes.",
]


def parse_date(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    m += 1
    day = min(d.day, 28)
    return dt.date(y, m, day)


def make_id(rng: random.Random, used: set[str]) -> str:
    alphabet = string.ascii_uppercase + string.digits
    while True:
        pid = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if pid not in used:
            used.add(pid)
            return pid


def cap(s: str) -> str:
    return s[0].upper() + s[1:]


def arc_for_volume(arcs: list[str], nvol: int, vol: int) -> tuple[str, str]:
    """Spread arcs over volumes; return (arc clause, stage key)."""
    k = len(arcs)
    idx = min(k - 1, (vol - 1) * k // nvol)
    vols_in_arc = [v for v in range(1, nvol + 1) if min(k - 1, (v - 1) * k // nvol) == idx]
    if len(vols_in_arc) == 1:
        stage = "only"
    elif vol == vols_in_arc[0]:
        stage = "start"
    elif vol == vols_in_arc[-1]:
        stage = "end"
    else:
        stage = "middle"
    return arcs[idx], stage


def first_sentence(text: str) -> str:
    """First sentence of a premise; does not split on initials such as 'Monkey D.' or 'Dr.'."""
    m = re.search(r"(?<![A-Z])(?<!Dr)(?<!Mr)(?<!No)(?<!St)\.\s+(?=[A-Z])", text)
    return text[: m.start() + 1] if m else text


def synopsis(s: dict, vol: int, rng: random.Random) -> str:
    arc, stage = arc_for_volume(s["arcs"], s["nvol"], vol)
    if vol == 1:
        return f"{s['premise']} Volume 1 opens the story: {arc}."
    hook = first_sentence(s["premise"])
    arc_sent = STAGE_PHRASES[stage].format(vol=vol, arc=arc)
    parts = [arc_sent, f"Series premise: {hook}"]
    if rng.random() < 0.6:
        parts.append(rng.choice(EXTRAS))
    return " ".join(parts)


def base_price(store: str, fmt: str, rng: random.Random) -> int:
    if store == "manga_jp":
        base = {"std": rng.choice([484, 495, 506, 528, 550, 572, 594, 616]),
                "big": rng.choice([693, 715, 748, 770, 792, 836, 880]),
                "deluxe": rng.choice([1100, 1210, 1320, 1430, 1496])}[fmt]
        return base
    base = {"std": rng.choice([1480, 1580, 1680, 1780, 1880, 1980]),
            "big": rng.choice([1880, 1980, 2080, 2180]),
            "deluxe": rng.choice([2280, 2380, 2480, 2500])}[fmt]
    return base


def price_for(store: str, base: int, vol: int) -> int:
    """Later volumes of long series are a little pricier (tax/print-cost changes)."""
    if store == "manga_jp":
        return min(1500, base + 11 * (vol // 4))
    return min(2500, base + 20 * (vol // 5))


def stock_for(rng: random.Random) -> int:
    if rng.random() < 0.10:
        return 0
    return rng.choice([rng.randint(1, 12), rng.randint(5, 60), rng.randint(20, 200)])


def build_products(rng: random.Random) -> list[dict]:
    used: set[str] = set()
    products = []
    for s in SERIES:
        stores = {"both": STORES, "jp": ("manga_jp",), "us": ("comics_us",)}[s["stores"]]
        jp_first = parse_date(s["first"])
        us_first = parse_date(s["us"]) if s["us"] else max(add_months(jp_first, 26), dt.date(2003, 5, 6))
        for store in stores:
            first = jp_first if store == "manga_jp" else us_first
            every = s["every"] if store == "manga_jp" else max(3, s["every"])
            syn_rng = random.Random(f"{SEED}-{s['series']}-{store}")
            base = base_price(store, s["fmt"], syn_rng)
            for vol in range(1, s["nvol"] + 1):
                date = add_months(first, every * (vol - 1))
                if vol > 1:
                    date = date + dt.timedelta(days=rng.randint(-6, 6))
                product = {
                    "id": make_id(rng, used),
                    "store_id": store,
                    "title": f"{s['series']}, Vol. {vol}",
                    "series": s["series"],
                    "volume": vol,
                    "author": s["author"],
                    "genres": list(s["genres"]),
                    "demographic": s["demographic"],
                    "synopsis": synopsis(s, vol, syn_rng),
                    "price_yen": price_for(store, base, vol),
                    "stock": stock_for(rng),
                    "release_date": date.isoformat(),
                }
                if store == "manga_jp":
                    product["series_ja"] = s["ja"]
                    product["series_reading"] = s["kana"]
                    product["title_ja"] = f"{s['ja']} {vol}"
                products.append(product)
    return products

# ---------------------------------------------------------------------------
# FAQ and policy documents
# ---------------------------------------------------------------------------
def D(id_, store, kind, title, body):
    return {"id": id_, "store_id": store, "kind": kind, "title": title, "body": body}


DOCUMENTS = [
    D("faq-shipping-domestic-jp", "manga_jp", "faq", "Domestic shipping in Japan (manga_jp)",
      "Orders from the manga_jp store ship from our warehouse in Saitama, Japan. We use Yamato Transport for most parcels and Japan Post (Yu-Pack and Yu-Packet) for small orders of up to 3 volumes. Standard shipping costs 550 yen per order and is free for orders of 3,500 yen or more. Orders placed before 14:00 JST on a business day ship the same day; most addresses in Honshu receive them in 1-2 days, Hokkaido, Kyushu and Okinawa in 2-4 days. You can choose a delivery time slot (morning, 14-16, 16-18, 18-20, 19-21) at checkout for Yamato deliveries."),
    D("faq-shipping-domestic-us", "comics_us", "faq", "Domestic shipping in the United States (comics_us)",
      "Orders from the comics_us store ship from our fulfilment centre in Columbus, Ohio. Standard shipping uses USPS Ground Advantage and costs $5.99 (about 900 yen); it is free for orders of $45 (about 6,800 yen) or more. Expedited shipping via UPS 2nd Day Air costs $14.99. Orders placed before 1 p.m. Eastern Time on a business day usually ship the same day, and standard delivery takes 3-6 business days. We currently ship to all 50 states, APO/FPO addresses and Puerto Rico."),
    D("faq-shipping-international", "*", "faq", "International shipping",
      "manga_jp ships internationally from Japan with Japan Post EMS (3-7 days, from 2,000 yen) or ePacket light (7-14 days, from 900 yen) to more than 40 countries. comics_us ships to Canada and Mexico with USPS Priority Mail International (6-10 business days, from $24.99). International shipping fees are calculated at checkout from the parcel weight; one standard manga volume weighs about 180 g. Some countries are temporarily suspended by the carriers; the checkout page only lists destinations we can currently serve. International orders are not eligible for the free-shipping threshold."),
    D("faq-customs-duties", "*", "faq", "Customs, duties and import taxes",
      "International orders may be charged customs duties, import VAT or brokerage fees by the destination country. These charges are not included in our prices and are paid by the recipient on delivery. Printed books are duty-free in many countries, but VAT or GST often still applies; for example, the EU charges VAT on all imports. If you refuse a parcel because of customs charges, we refund the item price once it returns to us, minus the original shipping fee. We declare the real value of every order and cannot mark parcels as gifts."),
    D("faq-payment-methods-jp", "manga_jp", "faq", "Payment methods (manga_jp)",
      "The manga_jp store accepts Visa, Mastercard, JCB, American Express and Diners Club credit cards, PayPal, PayPay, and MangaAssist gift cards. You can also pay at a convenience store (konbini payment) at 7-Eleven, Lawson, FamilyMart and Ministop; a payment slip number is emailed to you and you have 3 days to pay before the order is cancelled automatically. Cash on delivery is available for Yamato deliveries with a 330 yen fee. Konbini payments can take up to 1 hour to be confirmed, and the order ships after confirmation."),
    D("faq-payment-methods-us", "comics_us", "faq", "Payment methods (comics_us)",
      "The comics_us store accepts Visa, Mastercard, American Express and Discover, PayPal, Apple Pay, Google Pay and MangaAssist gift cards. Prices are shown in yen in the app for consistency across stores, and your card is charged in US dollars at the exchange rate shown at checkout. Your card is authorised when you place the order and charged only when the order ships. Split payments between a gift card and one other method are supported. We do not accept cash on delivery, checks or konbini payment in the US store."),
    D("faq-gift-cards", "*", "faq", "Gift cards",
      "MangaAssist gift cards are available in amounts of 1,000, 3,000, 5,000 and 10,000 yen (or the dollar equivalent in the comics_us store). Digital gift cards are delivered by email within 10 minutes; printed gift cards ship free with any order. Gift cards are valid for 10 years from the date of purchase and cannot be exchanged for cash. A gift card can be used in the store where it was bought; manga_jp gift cards cannot be used at comics_us and vice versa. You can check your balance under Account > Gift cards."),
    D("faq-points-program", "*", "faq", "MangaAssist Points program",
      "Members earn 1 point for every 100 yen spent on print manga, and 2 points per 100 yen during double-point weekends announced in the newsletter. One point is worth 1 yen and can be used on your next order, with no minimum. Points are added 7 days after your order is delivered and expire 12 months after they were earned. Points are not earned on shipping fees, gift cards or cancelled orders, and points used on an order that is refunded are returned to your account. Points cannot be transferred between the manga_jp and comics_us stores."),
    D("faq-preorders", "*", "faq", "Preorders",
      "You can preorder upcoming volumes as soon as they appear in the catalog, usually 1-3 months before release. Preorders are charged when they ship, and our preorder price guarantee means you pay the lowest price offered between ordering and release. manga_jp preorders normally arrive on or one day after the official Japanese release date; comics_us preorders ship on the street date. You can cancel a preorder free of charge at any time before it ships from Account > Orders. If a release is delayed by the publisher, we email you and keep your preorder unless you cancel it."),
    D("faq-gift-wrapping", "*", "faq", "Gift wrapping and gift messages",
      "Gift wrapping is available for 330 yen per order in the manga_jp store (seasonal paper and a ribbon) and $3.99 per order in comics_us. You can add a free gift message of up to 200 characters, printed on a card. Gift-wrapped orders include a gift receipt without prices. Very large bundles (more than 20 volumes) are wrapped in two or more packages. Gift wrapping may add one business day to dispatch."),
    D("faq-volume-bundles", "*", "faq", "Volume bundles and box sets",
      "Many complete or partial series are available as bundles, for example volumes 1-10 in one order. Bundles are discounted by 5% compared with buying the volumes separately, and by 10% for complete series of 20 volumes or more. Official publisher box sets are listed as separate products and include extras such as posters. If one volume of a bundle is out of stock, we ship the rest immediately and the missing volume later at no extra shipping cost. Bundles can be returned only as a whole unless a volume is damaged."),
    D("faq-account", "*", "faq", "Creating and managing your account",
      "You can create an account with an email address or sign in with Google or Apple. Under Account you can change your email, password, delivery addresses (up to 10), default store and preferred genres used for recommendations. Guest checkout is available, but guests do not earn points. Each account is linked to one home store, manga_jp or comics_us; you can switch your default store once every 30 days. To delete your account, go to Account > Privacy > Delete account; remaining points and gift card balance are lost after 30 days."),
    D("faq-password-reset", "*", "faq", "Password reset and sign-in problems",
      "To reset your password, tap 'Forgot password' on the sign-in screen and we will email you a link that is valid for 60 minutes. If the email does not arrive within 10 minutes, check your spam folder. After 5 failed sign-in attempts your account is locked for 15 minutes for security. Two-step verification by authenticator app or SMS can be turned on under Account > Security. Our support team will never ask for your password."),
    D("faq-digital-vs-print", "*", "faq", "Digital versus print editions",
      "MangaAssist sells print editions only; we do not sell e-books or digital codes. manga_jp sells the original Japanese-language tankobon editions, while comics_us sells officially licensed English translations. Print editions from Japan read right to left, and most English editions keep the original right-to-left reading order. Some series are available in only one store because an English edition has not been published or the Japanese edition is out of print. Product pages show the format (standard, B6 or deluxe/omnibus) and page count."),
    D("faq-age-ratings", "*", "faq", "Age ratings and mature content",
      "Each product has a demographic label (kodomo, shonen, shojo, seinen or josei) that describes the target audience, not a strict age rating. Titles for children are kodomo; most shonen and shojo titles suit readers aged 10-13 and up. comics_us products also show the publisher rating: A (All Ages), T (Teen, 13+), T+ (Older Teen, 16+) and M (Mature, 18+). Products rated M or 18+ require a confirmed date of birth on your account. Parents can turn on the family filter under Account > Preferences to hide mature titles from search and recommendations."),
    D("faq-stock-restock", "*", "faq", "Out-of-stock items and restocks",
      "When an item shows 'Out of stock', you can tap 'Notify me' to get an email when it is available again. Most popular volumes are restocked within 1-2 weeks in manga_jp and 2-4 weeks in comics_us. Items marked 'Only 3 left' or fewer are reserved for you for 20 minutes after adding them to the cart. We do not take backorders for out-of-print volumes. Stock numbers in the app are updated every 5 minutes."),
    D("faq-order-tracking", "*", "faq", "How to track an order",
      "Once your order ships you receive an email with the carrier name and tracking number, and the order appears under Account > Orders with its status: processing, shipped, out for delivery, delivered, cancelled or returned. Tracking numbers can take up to 24 hours to show activity on the carrier's website. manga_jp uses Yamato Transport, Japan Post and Sagawa Express; comics_us uses USPS and UPS. You can also ask the MangaAssist chat 'where is my order' and give your order number, which starts with MA-. If tracking has not updated for 5 days, contact support."),
    D("faq-contact-support", "*", "faq", "Contacting customer support",
      "Our support team answers chat and email from 9:00 to 18:00 JST (manga_jp) and 9 a.m. to 6 p.m. Eastern Time (comics_us), Monday to Saturday. We reply to emails within 24 hours and to chat messages within 5 minutes during opening hours. Please include your order number (MA- followed by six digits) and photos if an item is damaged. The MangaAssist assistant is available 24/7 for order status, FAQs and recommendations. Phone support is available for manga_jp customers at 0120-000-555 (toll-free in Japan)."),
    D("faq-price-match", "*", "faq", "Prices and price changes",
      "manga_jp prices include Japanese consumption tax of 10%. comics_us prices exclude US sales tax, which is calculated at checkout based on the delivery address. Prices may change when publishers adjust list prices; the price you pay is the price at the time of ordering, or the lowest price before release for preorders. We do not price-match other retailers. Coupons cannot be combined, but they can be used together with points."),
    D("faq-newsletter-coupons", "*", "faq", "Newsletter, coupons and sales",
      "Subscribers to the MangaAssist newsletter get a 300 yen welcome coupon for orders of 2,000 yen or more. Coupons are valid for 30 days and only one coupon can be used per order. Big sales run three times a year (Golden Week, summer Comiket season and Black Friday) with up to 20% off selected series. Coupon codes are case-insensitive and entered at checkout. Coupons cannot be applied to gift cards or preorders that have already been charged."),
    D("faq-store-differences", "*", "faq", "Differences between the manga_jp and comics_us stores",
      "manga_jp is our Japanese store: it sells Japanese-language editions, ships from Japan, and prices typically range from about 480 to 1,500 yen per volume. comics_us sells English-language editions imported and stocked in the US, with prices typically from 1,100 to 2,500 yen per volume. The same series can have different stock, prices and release dates in each store. Orders, points and gift cards are separate for each store. The MangaAssist app itself is in English for both stores."),
    D("policy-returns-jp", "manga_jp", "policy", "Return policy (manga_jp)",
      "Unopened, unread items from the manga_jp store can be returned within 14 days of delivery. Start a return from Account > Orders > Return item; you will receive a prepaid Yamato return label for damaged or wrong items, and for change-of-mind returns the 550 yen return shipping is deducted from your refund. Items must be in their original shrink wrap where applicable. Preorder bonuses (shikishi, postcards) must be returned with the volume. Opened items are accepted only if they are damaged or defective."),
    D("policy-returns-us", "comics_us", "policy", "Return policy (comics_us)",
      "Items from the comics_us store can be returned within 30 days of delivery in new, unread condition. Start a return from Account > Orders > Return item to get a prepaid USPS label; return shipping is free for damaged, defective or wrong items and $4.99 for change-of-mind returns. Box sets must include all volumes and extras. Items marked final sale (clearance) cannot be returned unless damaged. Exchanges for a different volume are processed as a return and a new order."),
    D("policy-refund-timing", "*", "policy", "When will I get my refund?",
      "Refunds are issued within 3 business days after the returned item reaches our warehouse and passes inspection, or immediately when an order is cancelled before shipping. Credit card refunds appear on your statement within 5-10 business days depending on your bank; PayPal refunds within 3-5 business days. Konbini and cash-on-delivery payments in manga_jp are refunded by bank transfer within 7 business days after you submit your account details. Gift card and points payments are returned to your MangaAssist balance instantly. You receive an email when the refund is issued."),
    D("policy-damaged-items", "*", "policy", "Damaged, defective or wrong items",
      "If an item arrives damaged (bent covers, torn pages, water damage), misprinted, or is not what you ordered, report it within 7 days of delivery from Account > Orders > Report a problem and attach a photo. We send a free replacement if it is in stock, or a full refund including shipping if it is not. You do not need to return items damaged in transit that cost less than 1,000 yen; we may ask you to return more expensive items with a prepaid label. Minor shelf wear such as small scuffs on the cover is not considered damage for discounted items. Wrong items are collected free of charge."),
    D("policy-order-cancellation", "*", "policy", "Cancelling an order",
      "You can cancel an order free of charge while its status is 'processing', from Account > Orders > Cancel order or by asking the MangaAssist chat. Once an order is 'shipped' it can no longer be cancelled; instead, refuse the delivery or return it under the return policy. Preorders can be cancelled at any time before they ship. Konbini payment orders that are not paid within 3 days are cancelled automatically. Cancelled orders are refunded in full, including shipping and gift wrapping fees."),
    D("policy-exchanges", "*", "policy", "Exchanges",
      "We exchange damaged or defective items for the same product at no cost. If you ordered the wrong volume, you can request an exchange within 14 days (manga_jp) or 30 days (comics_us) of delivery, as long as the item is unread. The replacement ships as soon as the original is scanned by the carrier. Price differences are charged or refunded to your original payment method. Each order can be exchanged once."),
    D("policy-preorder-bonuses", "manga_jp", "policy", "Store-exclusive preorder bonuses (manga_jp)",
      "Some manga_jp preorders come with store-exclusive bonuses such as illustrated cards, shikishi boards or acrylic stands. Bonuses are available while supplies last, usually for the first 500-2,000 preorders, and are shipped inside the same parcel as the volume. A bonus is guaranteed only if the preorder is placed before the bonus deadline shown on the product page. Bonuses cannot be sold or exchanged separately. If a bonus is missing, contact support within 7 days of delivery."),
    D("policy-privacy", "*", "policy", "Privacy and data use",
      "We use your order history and favourite genres to personalise recommendations in the MangaAssist chat. Chat conversations are stored for 90 days to improve the service and are then deleted. We never sell personal data to third parties; carriers receive only the name, address and phone number needed for delivery. You can download or delete your data from Account > Privacy at any time. Payment card numbers are handled by our PCI DSS compliant payment provider and are never stored on our servers."),
    D("policy-order-limits", "*", "policy", "Order quantity limits",
      "To keep popular releases available for everyone, each customer can buy up to 5 copies of the same volume per order. Limited editions and special editions with bonuses are limited to 2 copies per account. Orders that appear to be for resale may be cancelled and refunded. Bulk orders for libraries and schools (20 copies or more) can be arranged through support with a 5% discount."),
    D("policy-delivery-problems", "*", "policy", "Lost, late or undelivered parcels",
      "If your parcel has not arrived 5 business days after the estimated delivery date (10 business days for international orders), contact us and we will open an investigation with the carrier. If the carrier confirms the parcel is lost, we send a replacement or a full refund, whichever you prefer. Parcels returned to us because of an incorrect address or a missed redelivery period (7 days for Yamato and Japan Post) are refunded minus the shipping fee, or reshipped for a new shipping fee. Parcels marked delivered but not received must be reported within 14 days."),
    D("policy-konbini-pickup", "manga_jp", "policy", "Convenience store pickup (manga_jp)",
      "manga_jp orders can be delivered to a 7-Eleven, FamilyMart or Lawson store for pickup instead of your home address. Pickup is available for parcels up to 60 cm and 2 kg (about 10 volumes) and costs the same as standard shipping. You receive an email with a pickup code when the parcel arrives, usually in 2-3 days. Parcels not collected within 7 days are returned to us and refunded minus the 550 yen shipping fee. Bring the pickup code and photo ID is not required."),
    D("policy-sales-tax-us", "comics_us", "policy", "US sales tax (comics_us)",
      "comics_us collects state and local sales tax where required by law, calculated at checkout from your shipping address. Tax rates currently range from 0% (for example Oregon and Delaware) to over 9% in some cities. Tax-exempt organisations such as schools and libraries can upload an exemption certificate under Account > Tax exemption. Sales tax is refunded proportionally when items are returned."),
    D("policy-reviews", "*", "policy", "Product reviews and community guidelines",
      "Customers who bought a product can post a rating from 1 to 5 stars and a review of up to 2,000 characters. Reviews containing spoilers must use the spoiler tag, and reviews with insults, personal data or links are removed. Reviews are checked by our moderation team within 48 hours. We never remove reviews because they are negative. Verified-purchase reviews are marked with a badge."),
]

# The Japanese wording of every document a manga_jp customer can be shown (store manga_jp or
# "*"): retrieval indexes it and a Japanese answer quotes it. comics_us-only documents have none.
DOCUMENTS_JA = {
    'faq-shipping-domestic-jp': (
        '国内配送と送料（manga_jp）',
        'manga_jpストアのご注文は、埼玉県の倉庫から発送します。ほとんどの荷物はヤマト運輸でお届けし、3冊までの小さなご注文には日本郵便（ゆうパック・ゆうパケット）を使います。通常配送の送料は1注文につき550円で、3,500円以上のご注文は送料無料です。営業日の14時（日本時間）までのご注文は当日に発送し、本州のほとんどの地域には1〜2日、北海道・九州・沖縄には2〜4日でお届けします。ヤマト運輸でのお届けでは、ご注文手続きの際に配達時間帯（午前中、14〜16時、16〜18時、18〜20時、19〜21時）をお選びいただけます。',
    ),
    'faq-shipping-international': (
        '海外配送',
        'manga_jpは日本から40か国以上へ、日本郵便のEMS（3〜7日、2,000円から）またはeパケットライト（7〜14日、900円から）で発送しています。comics_usはカナダとメキシコへ、USPSのプライオリティ・メール・インターナショナル（6〜10営業日、$24.99から）で発送します。海外送料は荷物の重さをもとに、ご注文手続きの画面で計算されます。標準的な漫画1冊の重さは約180gです。配送業者の都合で一時的に発送を停止している国があるため、手続き画面には現在お届けできる国だけが表示されます。海外へのご注文は送料無料の対象外です。',
    ),
    'faq-customs-duties': (
        '関税・輸入税について',
        '海外へのご注文では、お届け先の国で関税、輸入付加価値税（VAT）、通関手数料がかかる場合があります。これらは当店の価格に含まれておらず、お受け取りの際に受取人のご負担となります。印刷された書籍は多くの国で関税がかかりませんが、VATやGSTはかかることがよくあります。たとえばEUでは、すべての輸入品にVATが課されます。関税を理由に荷物の受け取りを拒否された場合は、当店に戻ってきた時点で、最初の送料を差し引いた商品代金を返金します。当店ではすべてのご注文を実際の金額で申告しており、荷物を贈り物として申告することはできません。',
    ),
    'faq-payment-methods-jp': (
        'お支払い方法（manga_jp）',
        'manga_jpストアでは、クレジットカード（Visa、Mastercard、JCB、American Express、Diners Club）、PayPal、PayPay、MangaAssistギフトカードがご利用いただけます。セブン-イレブン、ローソン、ファミリーマート、ミニストップでのコンビニ払いも可能です。払込票番号をメールでお送りしますので、3日以内にお支払いください。期限を過ぎるとご注文は自動的にキャンセルされます。ヤマト運輸でのお届けでは、手数料330円で代金引換もご利用いただけます。コンビニ払いは入金の確認に最大1時間かかることがあり、確認が取れてから発送します。',
    ),
    'faq-gift-cards': (
        'ギフトカード',
        'MangaAssistギフトカードは1,000円、3,000円、5,000円、10,000円の4種類です（comics_usストアでは同額相当のドル建て）。デジタルギフトカードは10分以内にメールでお届けし、カード型のギフトカードはどのご注文にも無料で同梱します。ギフトカードの有効期限はご購入日から10年間で、現金との交換はできません。ギフトカードはご購入いただいたストアでのみ使えます。manga_jpのギフトカードはcomics_usでは使えず、その逆も同様です。残高は「アカウント＞ギフトカード」で確認できます。',
    ),
    'faq-points-program': (
        'MangaAssistポイントプログラム',
        '会員の方には、紙の漫画のご購入100円につき1ポイント、ニュースレターでお知らせするポイント2倍の週末には100円につき2ポイントが貯まります。1ポイントは1円として次のご注文から使え、最低利用ポイント数はありません。ポイントはご注文の商品のお届けから7日後に付与され、付与から12か月で失効します。送料、ギフトカード、キャンセルされたご注文にはポイントが付きません。返金されたご注文で使ったポイントは、アカウントに戻ります。manga_jpとcomics_usの間でポイントを移すことはできません。',
    ),
    'faq-preorders': (
        '予約注文',
        '発売予定の巻は、カタログに掲載されしだい予約できます。通常は発売の1〜3か月前です。予約注文の代金は発送時に請求され、予約価格保証により、ご注文から発売までの間でいちばん安い価格でお買い求めいただけます。manga_jpの予約注文は、通常、日本での公式発売日の当日か翌日にお届けします。comics_usの予約注文は、現地の発売日（ストリートデート）に発送します。予約注文は、発送前であればいつでも「アカウント＞ご注文履歴」から無料でキャンセルできます。出版社の都合で発売が延期になった場合はメールでお知らせし、キャンセルのお申し出がない限り予約はそのまま継続します。',
    ),
    'faq-gift-wrapping': (
        'ギフトラッピングとメッセージカード',
        'ギフトラッピングは、manga_jpストアでは1注文につき330円（季節の包装紙とリボン）、comics_usでは1注文につき$3.99でご利用いただけます。200文字までのギフトメッセージを、無料でカードに印刷してお付けします。ラッピングしたご注文には、金額の記載がないギフト用の明細書が入ります。20冊を超える大きなセットは、2つ以上に分けて包装します。ギフトラッピングをご希望の場合、発送が1営業日遅れることがあります。',
    ),
    'faq-volume-bundles': (
        'まとめ買いセットとBOXセット',
        '多くのシリーズは、全巻または一部の巻をまとめたセットでもお求めいただけます（たとえば1〜10巻を1回のご注文で）。セットは各巻を別々に買うより5%安く、20巻以上の全巻セットは10%割引になります。出版社公式のBOXセットは別の商品として掲載しており、ポスターなどの特典が付きます。セットのうち1冊が在庫切れの場合は、残りをすぐに発送し、足りない巻は追加の送料なしで後からお送りします。セットの返品はセット全体でのみ承ります。ただし、破損している巻がある場合は別です。',
    ),
    'faq-account': (
        'アカウントの作成と管理',
        'アカウントは、メールアドレスで作成するか、GoogleまたはAppleでサインインして作成できます。「アカウント」では、メールアドレス、パスワード、お届け先住所（10件まで）、既定のストア、おすすめに使うお好きなジャンルを変更できます。ゲスト購入もご利用いただけますが、ゲストの方にはポイントが付きません。各アカウントは、manga_jpかcomics_usのどちらか1つのホームストアに結びつきます。既定のストアは30日に1回まで切り替えられます。アカウントを削除するには「アカウント＞プライバシー＞アカウントを削除」に進んでください。残っているポイントとギフトカードの残高は、30日後に失効します。',
    ),
    'faq-password-reset': (
        'パスワードの再設定とサインインのトラブル',
        'パスワードを再設定するには、サインイン画面で「パスワードをお忘れの方」をタップしてください。60分間有効なリンクをメールでお送りします。10分たってもメールが届かない場合は、迷惑メールフォルダをご確認ください。サインインに5回失敗すると、安全のためアカウントが15分間ロックされます。認証アプリまたはSMSによる2段階認証は、「アカウント＞セキュリティ」で有効にできます。サポートチームがお客様のパスワードをおたずねすることは決してありません。',
    ),
    'faq-digital-vs-print': (
        '電子版と紙の本の違い',
        'MangaAssistで販売しているのは紙の本だけで、電子書籍やデジタルコードは扱っていません。manga_jpでは日本語のオリジナル単行本を、comics_usでは正式にライセンスされた英語版を販売しています。日本の紙の本は右から左へ読み進め、英語版の多くも原作どおり右から左へ読む形のままです。英語版が出版されていない、あるいは日本語版が絶版になっているといった理由で、片方のストアにしかないシリーズもあります。商品ページには、判型（通常版、B6判、デラックス版・愛蔵版）とページ数を記載しています。',
    ),
    'faq-age-ratings': (
        '対象年齢と成人向けの作品',
        '各商品には読者層を示す区分（子ども向け、少年、少女、青年、女性）が付いていますが、これは厳密な年齢制限ではありません。子ども向けの作品は「子ども向け」に分類され、少年・少女向けの作品のほとんどは10〜13歳以上の読者に向いています。comics_usの商品には、出版社のレーティングも表示されます：A（全年齢）、T（ティーン、13歳以上）、T+（年長ティーン、16歳以上）、M（成人向け、18歳以上）。Mまたは18歳以上指定の商品を買うには、アカウントで生年月日の確認が必要です。保護者の方は「アカウント＞設定」でファミリーフィルターを有効にすると、成人向けの作品を検索やおすすめに表示しないようにできます。',
    ),
    'faq-stock-restock': (
        '在庫切れと再入荷',
        '「在庫切れ」と表示された商品は、「入荷のお知らせ」をタップしておくと、再入荷したときにメールでお知らせします。人気の巻の多くは、manga_jpでは1〜2週間、comics_usでは2〜4週間で再入荷します。「残り3点」以下と表示された商品は、カートに入れてから20分間お取り置きします。絶版の巻のお取り寄せ（バックオーダー）は承っておりません。アプリの在庫数は5分ごとに更新されます。',
    ),
    'faq-order-tracking': (
        'ご注文の追跡方法',
        'ご注文の商品が発送されると、配送業者名とお問い合わせ番号を記載したメールが届きます。ご注文は「アカウント＞ご注文履歴」にも、準備中、発送済み、配達中、配達完了、キャンセル済み、返品済みのいずれかの状況とともに表示されます。配送業者のウェブサイトで追跡情報が表示されるまで、最大24時間かかることがあります。manga_jpはヤマト運輸、日本郵便、佐川急便を、comics_usはUSPSとUPSを利用しています。MangaAssistのチャットで「注文はどこ？」とたずねて、MA-で始まるご注文番号を伝えていただくこともできます。追跡情報が5日間更新されない場合は、サポートまでご連絡ください。',
    ),
    'faq-contact-support': (
        'カスタマーサポートへのお問い合わせ',
        'サポートチームは、月曜日から土曜日まで、チャットとメールでお問い合わせにお答えしています。受付時間は、manga_jpが9:00〜18:00（日本時間）、comics_usが米国東部時間の午前9時〜午後6時です。メールには24時間以内に、チャットには受付時間内なら5分以内にお返事します。お問い合わせの際はご注文番号（MA-に続く6桁）を添え、商品が破損している場合は写真もお送りください。MangaAssistアシスタントは、注文状況、よくある質問、おすすめについて24時間365日ご利用いただけます。manga_jpのお客様は、電話サポート0120-000-555（日本国内は通話料無料）もご利用いただけます。',
    ),
    'faq-price-match': (
        '価格と価格の変更',
        'manga_jpの価格には10%の消費税が含まれています。comics_usの価格には米国の売上税が含まれておらず、売上税はお届け先住所をもとにご注文手続きの際に計算されます。出版社が定価を改定すると、価格が変わることがあります。お支払いいただくのはご注文時点の価格で、予約注文の場合は発売までの最安値です。他店との価格合わせは行っておりません。クーポン同士は併用できませんが、ポイントとは一緒に使えます。',
    ),
    'faq-newsletter-coupons': (
        'ニュースレター・クーポン・セール',
        'MangaAssistのニュースレターにご登録いただくと、2,000円以上のご注文に使える300円のウェルカムクーポンを差し上げます。クーポンの有効期限は30日間で、1回のご注文に使えるクーポンは1枚だけです。大型セールは年に3回（ゴールデンウィーク、夏のコミケシーズン、ブラックフライデー）開催し、対象シリーズが最大20%オフになります。クーポンコードは大文字と小文字を区別せず、ご注文手続きの際に入力します。ギフトカードや、すでに代金を請求済みの予約注文にはクーポンを使えません。',
    ),
    'faq-store-differences': (
        'manga_jpストアとcomics_usストアの違い',
        'manga_jpは日本のストアで、日本語版を販売し、日本から発送します。価格はおおむね1冊あたり約480〜1,500円です。comics_usは米国に輸入して在庫している英語版を販売しており、価格はおおむね1冊あたり1,100〜2,500円です。同じシリーズでも、ストアによって在庫、価格、発売日が異なることがあります。ご注文、ポイント、ギフトカードはストアごとに別々です。MangaAssistアプリ自体は、どちらのストアでも英語で表示されます。',
    ),
    'policy-returns-jp': (
        '返品について（manga_jp）',
        'manga_jpストアでお買い求めいただいた未開封・未読の商品は、お届けから14日以内であれば返品できます。返品は「アカウント＞ご注文履歴＞返品する」からお手続きください。破損品や誤配送の場合は、送料当店負担のヤマト運輸の返送用伝票をお送りします。お客様のご都合による返品の場合は、返送料550円を返金額から差し引きます。シュリンク包装のある商品は、包装されたままの状態でご返送ください。予約特典（色紙、ポストカードなど）は、本と一緒にご返送ください。開封済みの商品は、破損や不良がある場合に限り返品を承ります。',
    ),
    'policy-refund-timing': (
        '返金はいつ受け取れますか？',
        '返金は、返品された商品が当店の倉庫に届いて検品を終えてから3営業日以内に行います。発送前にキャンセルされたご注文は、すぐに返金します。クレジットカードへの返金が明細に反映されるまでは、カード会社により5〜10営業日、PayPalへの返金は3〜5営業日かかります。manga_jpでコンビニ払いまたは代金引換でお支払いいただいた場合は、振込先口座の情報をお知らせいただいてから7営業日以内に銀行振込で返金します。ギフトカードやポイントでお支払いいただいた分は、MangaAssistの残高にすぐに戻ります。返金の手続きが済むと、メールでお知らせします。',
    ),
    'policy-damaged-items': (
        '破損・不良・誤配送の商品',
        '届いた商品に破損（表紙の折れ、ページの破れ、水濡れ）や印刷の不良があった場合、またはご注文と違う商品が届いた場合はお知らせください。お届けから7日以内に、写真を添えて「アカウント＞ご注文履歴＞問題を報告」からご連絡いただけます。在庫があれば交換品を無料でお送りし、在庫がなければ送料を含めて全額を返金します。配送中に破損した1,000円未満の商品は、返送していただく必要はありません。それより高額な商品は、送料当店負担の伝票でご返送をお願いすることがあります。割引商品の表紙の小さなこすれなど、軽い棚ずれは破損とはみなしません。誤って届いた商品は無料で回収します。',
    ),
    'policy-order-cancellation': (
        'ご注文のキャンセル',
        'ご注文の状況が「準備中」の間は、無料でキャンセルできます。「アカウント＞ご注文履歴＞注文をキャンセル」から、またはMangaAssistのチャットでお申し付けください。「発送済み」になったご注文はキャンセルできないため、受け取りを拒否するか、返品規定に沿って返品してください。予約注文は、発送前であればいつでもキャンセルできます。コンビニ払いのご注文は、3日以内にお支払いがないと自動的にキャンセルされます。キャンセルされたご注文は、送料やギフトラッピング代も含めて全額を返金します。',
    ),
    'policy-exchanges': (
        '商品の交換',
        '破損や不良のある商品は、同じ商品と無料で交換します。ご注文の巻を間違えた場合も、未読であれば、お届けから14日以内（manga_jp）または30日以内（comics_us）に交換をお申し込みいただけます。交換品は、元の商品を配送業者が引き受けしだい発送します。価格に差がある場合は、最初のお支払い方法で差額を請求または返金します。交換は1つのご注文につき1回までです。',
    ),
    'policy-preorder-bonuses': (
        'ストア限定の予約特典（manga_jp）',
        'manga_jpの予約注文の中には、イラストカード、色紙、アクリルスタンドなどのストア限定特典が付くものがあります。特典はなくなりしだい終了で、通常は先着500〜2,000件の予約が対象です。特典は本と同じ荷物に入れてお届けします。特典が確実に付くのは、商品ページに記載の特典締切日より前にご予約いただいた場合だけです。特典だけの販売や交換はできません。特典が入っていなかった場合は、お届けから7日以内にサポートまでご連絡ください。',
    ),
    'policy-privacy': (
        'プライバシーとデータの利用',
        'MangaAssistのチャットでは、ご注文履歴とお好きなジャンルをもとに、お客様に合わせたおすすめをご提案しています。チャットの会話はサービス改善のため90日間保存し、その後削除します。個人情報を第三者に販売することは決してありません。配送業者にお渡しするのは、お届けに必要な氏名、住所、電話番号だけです。ご自身のデータは、「アカウント＞プライバシー」からいつでもダウンロードまたは削除できます。カード番号はPCI DSSに準拠した決済代行会社が取り扱い、当社のサーバーに保存されることはありません。',
    ),
    'policy-order-limits': (
        'ご注文数量の制限',
        '人気の新刊を多くのお客様にお届けできるよう、同じ巻のご購入は1回のご注文につき5冊までとさせていただいています。限定版や特典付きの特装版は、1アカウントにつき2冊までです。転売目的と思われるご注文は、キャンセルのうえ返金することがあります。図書館や学校向けの大口注文（20冊以上）は、サポートを通じて5%割引で承ります。',
    ),
    'policy-delivery-problems': (
        '紛失・遅延・未着の荷物',
        'お届け予定日から5営業日（海外へのご注文は10営業日）が過ぎても荷物が届かない場合はご連絡ください。配送業者と一緒に調査を始めます。配送業者が紛失を確認した場合は、ご希望に応じて代わりの商品をお送りするか、全額を返金します。住所の誤りや再配達の保管期限切れ（ヤマト運輸と日本郵便は7日間）で当店に戻ってきた荷物は、送料を差し引いて返金するか、新たに送料をいただいて再発送します。配達済みと表示されているのに受け取っていない荷物は、14日以内にご報告ください。',
    ),
    'policy-konbini-pickup': (
        'コンビニ受け取り（manga_jp）',
        'manga_jpのご注文は、ご自宅の代わりにセブン-イレブン、ファミリーマート、ローソンの店舗で受け取れます。コンビニ受け取りは60cm・2kg（約10冊）までの荷物が対象で、料金は通常配送と同じです。荷物が店舗に届くと、受け取り用のコードを記載したメールが届きます。通常は2〜3日で店舗に届きます。7日以内に受け取られなかった荷物は当店に返送され、送料550円を差し引いて返金します。受け取りの際は受け取りコードをお持ちください。写真付きの身分証明書は必要ありません。',
    ),
    'policy-reviews': (
        '商品レビューとコミュニティガイドライン',
        '商品を購入されたお客様は、星1〜5の評価と2,000文字までのレビューを投稿できます。ネタバレを含むレビューにはネタバレタグを付けてください。誹謗中傷、個人情報、リンクを含むレビューは削除します。レビューは48時間以内にモデレーションチームが確認します。否定的な内容だという理由でレビューを削除することはありません。購入確認済みのレビューにはバッジが表示されます。',
    ),
}
for _doc in DOCUMENTS:
    if _doc["id"] in DOCUMENTS_JA:
        _doc["title_ja"], _doc["body_ja"] = DOCUMENTS_JA[_doc["id"]]


# ---------------------------------------------------------------------------
# Users and orders
# ---------------------------------------------------------------------------
USERS = [
    {"user_id": "u-demo", "name": "Demo User", "favourite_genres": ["action", "adventure", "fantasy"], "language": "en", "store_id": "manga_jp"},
    {"user_id": "u-aiko", "name": "Aiko Tanaka", "favourite_genres": ["romance", "slice_of_life"], "language": "en", "store_id": "manga_jp"},
    {"user_id": "u-kenji", "name": "Kenji Watanabe", "favourite_genres": ["historical", "action", "martial_arts"], "language": "ja", "store_id": "manga_jp"},
    {"user_id": "u-maria", "name": "Maria Gonzalez", "favourite_genres": ["fantasy", "isekai", "comedy"], "language": "en", "store_id": "comics_us"},
    {"user_id": "u-jake", "name": "Jake Miller", "favourite_genres": ["horror", "psychological", "thriller"], "language": "en", "store_id": "comics_us"},
    {"user_id": "u-priya", "name": "Priya Shah", "favourite_genres": ["sports", "music", "drama"], "language": "en", "store_id": "comics_us"},
]

# (order_id, user_id, placed_at, status, [(series, volume, quantity), ...])
# Items are resolved to real product ids of the user's store when generating.
ORDER_SPECS = [
    ("MA-100234", "u-demo", "2026-11-18", "shipped", [("One Piece", 1, 1), ("One Piece", 2, 1)]),
    ("MA-100198", "u-demo", "2026-11-02", "delivered", [("Frieren: Beyond Journey's End", 1, 1)]),
    ("MA-100251", "u-demo", "2026-11-22", "processing", [("Jujutsu Kaisen", 3, 1), ("Chainsaw Man", 2, 1)]),
    ("MA-100245", "u-demo", "2026-11-20", "out_for_delivery", [("Spy x Family", 4, 2)]),
    ("MA-100112", "u-demo", "2026-10-09", "returned", [("Berserk", 2, 1)]),
    ("MA-100203", "u-aiko", "2026-11-05", "delivered", [("Fruits Basket", 1, 1), ("Fruits Basket", 2, 1), ("Fruits Basket", 3, 1)]),
    ("MA-100240", "u-aiko", "2026-11-19", "shipped", [("Kimi ni Todoke: From Me to You", 2, 1), ("Horimiya", 1, 1)]),
    ("MA-100176", "u-aiko", "2026-10-27", "cancelled", [("Nana", 4, 1)]),
    ("MA-100221", "u-kenji", "2026-11-12", "delivered", [("Kingdom", 1, 1), ("Kingdom", 2, 1)]),
    ("MA-100248", "u-kenji", "2026-11-21", "processing", [("Vagabond", 3, 1)]),
    ("MA-100230", "u-kenji", "2026-11-16", "shipped", [("Golden Kamuy", 2, 1), ("Rurouni Kenshin", 1, 1)]),
    ("MA-100215", "u-maria", "2026-11-09", "delivered", [("That Time I Got Reincarnated as a Slime", 1, 1), ("Delicious in Dungeon", 1, 1)]),
    ("MA-100244", "u-maria", "2026-11-20", "shipped", [("Mushoku Tensei: Jobless Reincarnation", 2, 1)]),
    ("MA-100189", "u-maria", "2026-10-30", "returned", [("Witch Hat Atelier", 3, 1)]),
    ("MA-100236", "u-jake", "2026-11-18", "out_for_delivery", [("Uzumaki", 1, 1), ("Tokyo Ghoul", 1, 1)]),
    ("MA-100207", "u-jake", "2026-11-07", "delivered", [("Monster", 1, 1), ("Parasyte", 1, 1)]),
    ("MA-100250", "u-jake", "2026-11-22", "processing", [("Chainsaw Man", 5, 1)]),
    ("MA-100226", "u-priya", "2026-11-14", "shipped", [("Haikyu!!", 5, 1), ("Haikyu!!", 6, 1), ("Haikyu!!", 7, 1)]),
    ("MA-100181", "u-priya", "2026-10-28", "delivered", [("Blue Period", 1, 1)]),
    ("MA-100243", "u-priya", "2026-11-20", "cancelled", [("Your Lie in April", 2, 1)]),
]

TODAY = dt.date(2026, 11, 23)  # reference "today" for the demo orders

CARRIERS = {"manga_jp": ["Yamato Transport", "Japan Post", "Sagawa Express"], "comics_us": ["USPS", "UPS"]}


def tracking_number(carrier: str, rng: random.Random) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    if carrier == "Yamato Transport":
        return f"{d(4)}-{d(4)}-{d(4)}"
    if carrier == "Japan Post":
        return f"{d(4)}-{d(4)}-{d(4)}"
    if carrier == "Sagawa Express":
        return d(12)
    if carrier == "USPS":
        return "9400" + d(18)
    return "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def build_orders(products: list[dict], rng: random.Random) -> list[dict]:
    by_key = {(p["store_id"], p["series"], p["volume"]): p for p in products}
    store_of = {u["user_id"]: u["store_id"] for u in USERS}
    orders = []
    for oid, uid, placed, status, items in ORDER_SPECS:
        store = store_of[uid]
        resolved = []
        for series, vol, qty in items:
            p = by_key.get((store, series, vol))
            if p is None:
                raise SystemExit(f"order {oid}: {series} vol {vol} not in store {store}")
            resolved.append({"product_id": p["id"], "title": p["title"], "quantity": qty, "price_yen": p["price_yen"]})
        placed_d = parse_date(placed)
        transit = {"manga_jp": 3, "comics_us": 6}[store]
        eta = placed_d + dt.timedelta(days=transit + rng.randint(1, 3))
        # keep ETAs coherent with "today" (TODAY) and the order status
        if status == "out_for_delivery":
            eta = TODAY
        elif status in ("shipped", "processing"):
            eta = max(eta, TODAY + dt.timedelta(days=rng.randint(1, 3)))
        elif status in ("delivered", "returned"):
            eta = min(eta, TODAY - dt.timedelta(days=rng.randint(2, 6)))
        if oid == "MA-100234":
            eta = dt.date(2026, 11, 25)
        if status in ("processing", "cancelled"):
            carrier, tracking = "", ""
        else:
            carrier = rng.choice(CARRIERS[store])
            if oid == "MA-100234":
                carrier = "Yamato Transport"
            tracking = tracking_number(carrier, rng)
            if oid == "MA-100234":
                tracking = "4512-3345-9981"
        orders.append({"order_id": oid, "user_id": uid, "store_id": store, "items": resolved,
                       "status": status, "placed_at": placed, "eta": eta.isoformat(),
                       "carrier": carrier, "tracking": tracking})
    return orders

# ---------------------------------------------------------------------------
# Intent data (hand-written). See data/README.md for the labelling rules.
# ---------------------------------------------------------------------------
TRAIN = {
    "greeting": [
        "hello", "Hi there!", "hey", "Good morning", "good evening!", "Konnichiwa!", "konbanwa",
        "ohayo gozaimasu", "Hello MangaAssist", "hi hi", "Hey, anyone there?", "Yo!", "hiya",
        "Good afternoon.", "helo", "hellooo", "Hi, I'm new here", "Greetings!", "hey there bot",
        "Morning!", "hi assistant", "Hello, nice to meet you", "Howdy", "sup",
        "Hi! First time using this app", "hey hey", "Good day to you", "Hello again",
        "hai", "hey mangaassist, hello", "heya", "Hi :)", "Hello hello", "good morning assistant",
        "Hi, hope you're doing well", "Hey! Just saying hi", "Hello from Osaka!", "Evening!",
        "hi im back", "Ohayou!", "Yahallo!", "Hey friend", "Hello? is this the manga shop bot?",
        "Hi MangaAssist, good to see you", "helloo there", "Hullo",
        "こんにちは", "おはようございます", "こんばんは、はじめまして",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "hi again", "hey there!", "Good morning, MangaAssist!", "hi hello", "Hiii", "heyyy",
        "hello hello hello", "Good evening, hope all is well", "hi, it's me again", "Hey hey hey",
        "yo what's up", "Morning, bot", "hello there mangaassist", "hey, good afternoon", "hi hi hi", "helllo",
        "hii", "hey yo", "Hello, anybody home?", "Good evening to the MangaAssist team",
        "hello, how are you doing today?", "Hey bot", "hello friend", "Konnichiwa, MangaAssist",
        "konnichiwa minna-san", "ohayo!", "konbanwa, hello", "Ohayo gozaimasu, assistant-san",
        "hi there, good morning", "Evening, assistant", "Hey! I'm back again",
        "Hello, I just downloaded the app", "hey, just got here", "Hi, just logged in", "good morning to you",
        "hey there manga bot", "Hiya! Long time no see", "hello? hi", "Hey, good morning!", "hi bot :)", "gm",
        "Well hello there", "Hi hi, it's Aiko", "Hey again, MangaAssist", "henlo", "Hello, good evening",
        "hi, first message here",
        "こんばんは！", "おはよう", "おはようございます！MangaAssistさん", "やっほー", "どうもー", "こんにちは、MangaAssistさん", "お疲れさまです", "こんちは",
        "おっす", "こんにちはー、初めて使います", "おはよー！", "ども、こんばんは", "やあ、こんにちは",
    ],
    "faq": [
        "How much is shipping?", "do you ship to canada", "What payment methods do you accept?",
        "Can I pay with PayPal?", "can i pay at the konbini?", "How do points work?",
        "How many points do I get per 100 yen?", "When do my points expire?",
        "Do you offer gift wrapping?", "How much does gift wrap cost?", "Can I preorder upcoming volumes?",
        "When am I charged for a preorder?", "What is the free shipping threshold?",
        "how long does delivery take to hokkaido", "Do you ship internationally?",
        "Will I have to pay customs fees?", "How do I reset my password?", "how do i delete my account",
        "Can I change my default store?", "Do you sell digital manga?", "are your books in english or japanese",
        "What does T+ rating mean?", "Is cash on delivery available?", "Do you accept JCB cards?",
        "Can I use a gift card from the US store in the Japan store?", "how long are gift cards valid",
        "What is your return policy?", "How long do refunds usually take?", "Can I cancel an order before it ships?",
        "do bundles get a discount?", "What carriers do you use in Japan?",
        "Is there a limit on how many copies I can buy?", "How do I contact customer support?",
        "What are your support hours?", "Can I pick up my order at a convenience store?",
        "Do you price match Amazon?", "is sales tax included in the price?",
        "sumimasen, what is the shipping fee to Okinawa?", "Can I choose a delivery time slot?",
        "How do I turn on the family filter?", "do u have a newsletter coupon",
        "Can I combine two coupons on one order?", "How do I get notified when something is restocked?",
        "what are preorder bonuses and how do i get them", "Do you ship to APO addresses?",
        "Can I use points and a coupon together?", "Can I pay with Apple Pay in the US store?",
        "送料はいくらですか", "ポイントの有効期限はいつまでですか", "コンビニ払いはできますか",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "do you ship to australia?", "What's the shipping fee for the US store?",
        "is shipping free over a certain amount in the comics_us store",
        "How long does standard shipping take in the US?", "Do you deliver on Sundays?",
        "can I pay with a debit card", "Do you take Visa and Mastercard?", "is google pay supported",
        "Can I split the payment between two cards?", "How do I earn points?",
        "can I use my points in the US store too?", "Do I get points for writing a review?",
        "how do i write a review for a manga", "Do preorders ship on the release date?",
        "If a preorder is delayed, when is my card charged?", "do you sell gift cards",
        "Can I send a gift card by email?", "How do I change the email address on my account?",
        "How do I update my shipping address in account settings?", "can i have 2 accounts",
        "Is my credit card info stored safely?", "What do you do with my personal data?",
        "How do I unsubscribe from the newsletter?", "Are prices shown with tax included?",
        "why are prices in yen on the US store?", "Do you have a student discount?",
        "Can I use a coupon on a preorder?", "how does the restock alert work?", "Do you ship to PO boxes?",
        "how does order tracking work on your site?", "Do you deliver to Korea?",
        "What courier do you use in the US?", "Can I change the delivery address after ordering?",
        "Can I order as a guest without an account?", "Is there a minimum order amount?",
        "does your return policy cover opened books?", "Do you charge a restocking fee on returns?",
        "Is return shipping free?", "How do exchanges work?", "Do you include gift receipts?",
        "Are your manga new or second-hand?", "do you have a physical store I can visit?",
        "Can I get a receipt with my company name on it?", "Is there a phone number for support?",
        "Is the app available on Android?", "How do I turn on notifications for new releases?",
        "can I save items to a wishlist?", "What happens if nobody is home when the courier comes?",
        "how does the bundle discount work", "What's the cutoff time for same-day dispatch?",
        "shipping cost to uk?", "payment options?", "points program details pls", "customs fees for canada?",
        "What is your cancellation policy?", "In general, how are konbini payments refunded?",
        "支払い方法は何がありますか", "クレジットカードは使えますか", "ポイントはどうやって貯まりますか", "配送にはどれくらい日数がかかりますか", "配達日時の指定はできますか",
        "メールアドレスの変更方法を教えてください", "領収書は発行できますか", "ギフトカードは使えますか", "キャンセルはいつまでできますか", "返品の送料は誰が負担しますか",
        "電子書籍も販売していますか", "クーポンの使い方を教えてください", "会員登録しなくても買えますか",
    ],
    "order_status": [
        "Where is my order?", "where's my package", "Track my order MA-100234",
        "When will my order arrive?", "Has my order shipped yet?", "what's the status of order MA-100198",
        "Can you give me the tracking number for my last order?", "my order still says processing, when will it ship?",
        "Is my manga out for delivery today?", "When is the estimated delivery date for MA-100251?",
        "sumimasen, where is my order?", "I ordered One Piece vol 1 last week, where is it",
        "Did my Spy x Family order ship?", "order status please", "track package",
        "which carrier is delivering my order?", "What's the Yamato tracking number for my order?",
        "has MA-100245 been delivered", "How long until my parcel gets here?",
        "I placed an order on Monday, any update?", "can you check on my order", "where is my stuff",
        "is my preorder on its way?", "the tracking page hasn't updated, where is my parcel now?",
        "Status of my recent purchase?", "When does my Jujutsu Kaisen order arrive?",
        "Will my order come before the weekend?", "check order MA100234", "wheres my oder",
        "my order number is MA-100240, can you tell me where it is", "Did you ship the Haikyu volumes yet?",
        "Is my package with Japan Post or Yamato?", "what day will my books be delivered",
        "Can you tell me if my order was dispatched?", "I need the ETA for my order",
        "has my order left the warehouse", "My USPS tracking number please",
        "Is the delivery still scheduled for tomorrow?", "show me my orders", "what's happening with my order?",
        "I haven't received any shipping email, has my order been sent?", "list my recent orders and their status",
        "is order MA-100236 out for delivery", "When will UPS bring my package?",
        "could you look up where my Chainsaw Man order is", "Order tracking for my last purchase",
        "Any news on my delivery?",
        "注文した漫画はいつ届きますか", "荷物の追跡番号を教えてください", "注文はもう発送されましたか",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "where's my One Piece order?", "It's been a week, where is my package?",
        "My order is late, when will it actually arrive?",
        "ordered 5 days ago and still nothing, where is it?", "status of MA-100251?", "MA-100234 status",
        "can you track MA-100198 for me", "has my Frieren preorder shipped?",
        "When will my Dandadan volumes get here?", "is my order still processing?",
        "why does my order still say processing? when will it ship", "Which day is my delivery coming?",
        "my tracking says in transit, when will it be delivered?", "out for delivery yet?",
        "give me the tracking link for my order", "What's the tracking number for MA-100245?",
        "hi, can you check on my delivery for me?",
        "My books were supposed to arrive today, are they still coming?",
        "Is my order going to make it by Christmas?", "will my package arrive before friday?",
        "how many days until my order ships", "when do you ship my order", "Did my order go out today?",
        "I ordered Berserk vol 1 on the 15th, has it been sent?",
        "where is my package?? it said arriving yesterday",
        "Still waiting on my order, any idea when it'll come?", "what is my order status",
        "check the status of all my orders", "Which carrier has my Blue Lock order and what's the tracking?",
        "is my package still at the depot?", "what's the delivery window for my parcel today?",
        "order MA-100240 - shipped or not?", "where r my books", "wher is my pakage", "trackin number?",
        "can I see the shipping status of my last order?", "Has the Japan Post parcel been delivered yet?",
        "My order shows shipped but no tracking updates for 3 days, where is it now?",
        "did UPS deliver my order yet?", "when's my manga coming", "How far away is my delivery?",
        "am I getting my package today or tomorrow?", "sumimasen, has my order been shipped?",
        "Hello, is my Sakamoto Days order on the way?", "how long till my order from yesterday ships?",
        "any update on MA-100251",
        "The app says delivered but I want to double check, was MA-100198 delivered?",
        "まだ届いていません。いつ届きますか？", "発送状況を確認したいです", "注文番号MA-100234の配送状況を教えて", "ヤマトの追跡番号はありますか", "いつ発送されますか",
        "今日届きますか？", "注文の状況はどうなっていますか", "予約した漫画はもう出荷されましたか", "届くのは何日ごろになりますか", "配送業者はどこですか",
        "荷物が昨日届く予定だったのですが、どうなっていますか", "週末までに届きますか", "お届け予定はいつ？",
    ],
    "product_search": [
        "Do you have One Piece vol 5?", "is Chainsaw Man volume 3 in stock", "How much is Frieren volume 1?",
        "Search for Attack on Titan", "Do you sell Berserk?", "find manga by Naoki Urasawa",
        "Show me all volumes of Spy x Family", "Is Jujutsu Kaisen 4 available?",
        "do you have the english edition of Oshi no Ko", "what's the price of Vagabond vol 2",
        "Looking for Haikyu!! volume 7", "Do you carry Junji Ito's Uzumaki?",
        "I want to buy Demon Slayer vol 1", "is Kingdom available in the US store?",
        "Any books by Rumiko Takahashi?", "Do you have Dandadan volume 2 in stock?",
        "price of blue lock 3", "When was Kaiju No. 8 volume 4 released?",
        "Show me Delicious in Dungeon", "Do you have Yotsuba&! vol 5", "what volumes of Monster do you have",
        "Is Slam Dunk vol 1 out of stock?", "Find Death Note volume 2", "i'm looking for the fruits basket collector's edition",
        "do u have naruto 8", "Is there a Sailor Moon volume 3?", "look up Pokemon Adventures",
        "Do you have anything by Takehiko Inoue?", "Is Golden Kamuy vol 3 in stock in the Japan store?",
        "How many volumes of Mushishi do you sell?", "Sumimasen, do you have Detective Conan volume 4?",
        "Find Komi Can't Communicate vol 2", "Check stock for Akira volume 1", "price check: My Hero Academia 5",
        "Do you still have The Apothecary Diaries vol 1?", "search hell's paradise",
        "is the new Sakamoto Days volume out yet?", "What's the cheapest volume of Dragon Ball?",
        "Do you sell Doraemon manga?", "I need Bleach volume 6", "Can I get Tokyo Ghoul vol 1 here?",
        "Is Nana available in English?", "do you have witch hat atelier 4",
        "Who wrote Vinland Saga and do you have it?", "List all Chihayafuru volumes",
        "Is Cardcaptor Sakura in stock?", "show me manga by Aka Akasaka", "Looking for Blue Period vol 3",
        "ワンピースの5巻はありますか", "進撃の巨人の在庫はありますか", "鬼滅の刃1巻の値段を教えて",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "Is Bleach vol 2 in stock?", "how much is Sakamoto Days 1",
        "Do you have the Japanese edition of Dr. Stone vol 3?", "Any copies of Ghost in the Shell left?",
        "when does Blue Lock volume 6 come out", "price of hunter x hunter vol 4 in the US store",
        "is Vampire Knight sold in the comics_us store", "Do you sell Princess Jellyfish?",
        "looking for Skip Beat! vol 1", "Show me Junji Ito books", "books by Eiichiro Oda",
        "who draws Chainsaw Man", "Is Fire Force volume 1 available?", "do u have dragon ball vol 3",
        "I'm after the first volume of Horimiya", "Do you have Kimi ni Todoke in English?",
        "How many volumes of Golden Kamuy are out?", "what's the latest volume of One-Punch Man you have",
        "Is Yona of the Dawn vol 2 back in stock?", "Find JoJo's Bizarre Adventure volume 1",
        "Do you carry Cells at Work!?", "price for Lone Wolf and Cub vol 1?",
        "Akira volume 2, do you have it?", "search: kaiju no 8", "Is there a Kirby manga?",
        "Are there any Pokemon Adventures volumes in stock?", "Do you sell Usagi Drop in the Japan store?",
        "honey and clover vol 1 price", "Is Tokyo Revengers volume 3 available in Japanese?",
        "when is the next Frieren volume coming out?", "Have you got Oishinbo?",
        "is the Nodame Cantabile manga in stock in the US?", "show me the Paradise Kiss volumes",
        "Do you have Kamisama Kiss vol 4", "how much does a volume of Astro Boy cost",
        "Is My Dress-Up Darling vol 2 out of stock?", "can you find Boys Over Flowers for me",
        "do you still sell Ranma 1/2 vol 1?", "I'd like to buy Mushoku Tensei volume 2",
        "Is Food Wars available in English?", "looking for books by Hajime Isayama",
        "Inuyasha 5 - does the US store have it?", "what does Slam Dunk vol 2 cost",
        "do you have yo-kai watch manga", "Is Chi's Sweet Home available?",
        "sumimasen, Doraemon vol 1 arimasu ka?", "Is there a new volume of Kaiju No. 8 this month?",
        "how much is Naruto vol 1 in the US store?",
        "ハイキューの3巻ありますか", "ブルーロックの最新刊はいつ発売ですか", "ダンダダンは何巻まで出ていますか", "スラムダンクの1巻はいくらですか", "尾田栄一郎の本を探しています",
        "ドラゴンボールの2巻を買いたいです", "東京喰種の1巻はまだありますか", "よつばと！の5巻ありますか", "ベルセルクの在庫を確認したいです", "名探偵コナンの4巻はいくら？",
        "怪獣8号の新刊は出ましたか", "フルーツバスケットの愛蔵版はありますか", "井上雄彦の漫画を探しています", "ワンパンマン 3巻 値段",
    ],
    "recommendation": [
        "Can you recommend something like One Piece?", "What should I read after Attack on Titan?",
        "suggest a good romance manga", "I loved Death Note, what else would I like?",
        "any kawaii shojo manga osusume?", "Recommend a horror manga for a beginner",
        "What's a good manga for a 10 year old?", "I need a gift idea for my brother who likes sports anime",
        "give me some cozy slice of life recommendations", "Best isekai manga you have?",
        "What should I read next? I just finished Frieren", "Something similar to Haikyu but about basketball?",
        "recommend me a short completed series", "What manga would a Studio Ghibli fan enjoy?",
        "I'm new to manga, where should I start?", "any good cooking manga?",
        "Suggest a seinen series with a great story", "Recommend a mystery manga like Detective Conan",
        "what's popular right now?", "what manga is trending this month", "Got any music manga recommendations?",
        "I want something funny and light", "Can you recommend a josei manga for me?",
        "books like Spy x Family please", "Which manga should I buy for my girlfriend who loves Fruits Basket?",
        "Recommend something dark and psychological", "I like Chainsaw Man and Jujutsu Kaisen, what else?",
        "A manga similar to Vinland Saga?", "Suggest some historical manga",
        "What's a good manga to read on a long flight?", "recommend something with strong female leads",
        "what should i get my nephew for his birthday, he's 8", "anything like Mob Psycho 100?",
        "I liked My Dress-Up Darling. more like that?", "osusume no manga wa?",
        "Can you suggest a fantasy series that isn't too long?", "Is Berserk a good pick if I liked Vagabond?",
        "pick something for me based on my favourite genres", "hidden gems you would recommend?",
        "Recommend me a sports manga that isn't about volleyball", "I want a sad manga that will make me cry",
        "Which shonen should I try if I've already read Naruto and Bleach?",
        "suggest a manga to learn Japanese with", "what's a good kodomo manga for a first-time reader",
        "Need a Christmas present for a manga fan, ideas?", "Anything sci-fi like Akira or Ghost in the Shell?",
        "Something romantic but not cheesy?",
        "ワンピースみたいな漫画ありますか", "おすすめの恋愛漫画を教えてください", "初心者におすすめの漫画は？",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "I just finished Chainsaw Man, what should I pick up next?",
        "something like Demon Slayer but shorter?", "recommend me a manga with amazing artwork",
        "what's a good follow-up to Fullmetal Alchemist?",
        "my son loves Pokemon, what manga should I get him?",
        "Any suggestions for a manga about art or drawing?", "looking for something similar to Blue Period",
        "what would you recommend to someone who only watches anime?",
        "Suggest a manga with a really clever villain", "gift ideas for my sister, she's 15 and loves romance",
        "i liked oshi no ko, got anything similar?", "What are your top 3 picks right now?",
        "recommend a one-shot or single volume manga", "what manga has the best plot twists?",
        "Should I read Vinland Saga if I enjoyed Berserk?", "Is Frieren a good choice if I liked Mushishi?",
        "Would I like Monster if I'm into Death Note?", "Should I try Blue Lock? I usually read romance",
        "what do people usually read after finishing Naruto?", "anything like Kaguya-sama?",
        "manga recs for a 13 year old boy who likes action",
        "what's good for someone who's into time travel stories?",
        "i want something weird and creative, like Dandadan", "Recommend a completed shojo series",
        "suggest something motivating, I need inspiration",
        "What would you suggest for reading on the train, short chapters?",
        "good manga for adults who never read manga before",
        "my dad loves war history, what manga would he like?", "recommend a manga about animals or pets",
        "a manga with a strong friendship theme?", "pick me a random manga I'd enjoy",
        "I need something to cheer me up", "What should my book club read next? We liked A Silent Voice",
        "anything good that isn't a long series? max 10 volumes",
        "Recommend one volume I can gift for under 1000 yen",
        "what's the best starter manga for my girlfriend?", "Any sports manga besides Haikyu and Slam Dunk?",
        "what is the most popular manga in Japan right now", "what's worth reading from the 90s?",
        "I love Ghibli-style fantasy, what do you suggest?",
        "give me something similar to Parasyte but less gory", "osusume please, I like action and comedy",
        "which manga do you recommend for learning about Japanese culture?",
        "I've read everything by Naoki Urasawa, what now?", "recommend something my grandma would enjoy",
        "what's a fun manga for a teenager who hates reading?", "Just loved Bocchi the Rock. What next?",
        "鬼滅の刃が好きなんですが、似た漫画はありますか", "次に読む漫画を選んでください", "中学生の息子へのプレゼントにおすすめの漫画は？", "最近人気の漫画は何ですか",
        "短くて完結している漫画が読みたいです", "絵がきれいな漫画を教えてください", "フリーレンみたいな雰囲気の作品を探しています", "元気が出る漫画を読みたい",
        "デスノートが面白かったので、似たものを教えて", "大人でも楽しめる少年漫画はありますか", "彼女にあげる漫画を選んでほしい", "呪術廻戦の次に読むなら何がいい？", "読みやすい青年漫画を教えて",
    ],
    "comparison": [
        "Naruto vs Bleach, which is better?", "What's the difference between the manga_jp and comics_us editions of One Piece?",
        "Should I read Death Note or Monster?", "compare Haikyu and Kuroko's Basketball",
        "Which is darker, Berserk or Vinland Saga?", "Attack on Titan or Tokyo Ghoul for a horror fan?",
        "How is Frieren different from Delicious in Dungeon?", "Jujutsu Kaisen vs Chainsaw Man",
        "Is the English edition of Akira more expensive than the Japanese one?",
        "Compare the prices of Spy x Family vol 1 in both stores", "Which is longer, Slam Dunk or Haikyu?",
        "Fruits Basket or Ouran High School Host Club, which one has more comedy?",
        "what's the difference between shonen and seinen", "Which is better for kids: Doraemon or Yo-kai Watch?",
        "Kaguya-sama vs Komi Can't Communicate, which is funnier?", "Dr. Stone or The Promised Neverland?",
        "compare Mushoku Tensei and That Time I Got Reincarnated as a Slime", "Vagabond vs Lone Wolf and Cub",
        "Is Dandadan similar to Mob Psycho 100 or totally different?", "Which has better art, One-Punch Man or My Hero Academia?",
        "Demon Slayer or Jujutsu Kaisen for someone new to manga?", "pros and cons of Berserk deluxe vs regular volumes",
        "Nana or Paradise Kiss, which Ai Yazawa series should I start with?", "blue lock vs haikyu",
        "How does Your Lie in April compare to Blue Giant?", "Sailor Moon or Cardcaptor Sakura, which magical girl series is better?",
        "Is Kingdom better than Vinland Saga?", "Horimiya or Kimi ni Todoke, which is more romantic?",
        "difference between fullmetal alchemist and hunter x hunter?", "Which costs less per volume, Naruto or Bleach?",
        "Sakamoto Days vs Spy x Family, which has better action?", "Parasyte or Uzumaki, which is scarier?",
        "Compare Oshi no Ko and Kaguya-sama since they have the same author",
        "Which is the better starting point: Dragon Ball or One Piece?",
        "Chihayafuru vs Haikyu, which sports manga is more emotional?", "is 20th Century Boys or Monster the better Urasawa?",
        "Rurouni Kenshin or Inuyasha for a historical action fan?", "Which one should I buy first, Bocchi the Rock or Blue Giant?",
        "Tokyo Revengers vs Blue Lock - which is more hype?", "what are the main differences between Witch Hat Atelier and Frieren",
        "How do the two stores differ in price for Chainsaw Man?", "A Silent Voice or Your Lie in April, which is sadder?",
        "Golden Kamuy vs Vinland Saga which has more historical detail?", "Which is better value: a bundle or single volumes of Haikyu?",
        "Death Note: which edition is cheaper, the US one or the JP one?",
        "Is Mushishi slower paced than Frieren?", "Which is more kid-friendly, Pokemon Adventures or Kirby Manga Mania?",
        "ナルトとブリーチ、どっちが面白い？", "進撃の巨人と東京喰種の違いは何ですか", "ハイキューとスラムダンクを比較して",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "Dragon Ball or Naruto, which should I collect?",
        "which is funnier, Spy x Family or Komi Can't Communicate?", "Bleach vs Jujutsu Kaisen fights",
        "Berserk or Vagabond, which has better artwork?", "Tokyo Ghoul vs Parasyte, which is more gory?",
        "Death Note or The Promised Neverland for a smart thriller?",
        "Which is more romantic, Nana or Honey and Clover?",
        "What's the difference between the deluxe edition and the normal edition?",
        "Is Sailor Moon cheaper in the Japan store or the US store?",
        "Which store has Bocchi the Rock vol 1 for less?", "Compare Dr. Stone and Fullmetal Alchemist",
        "Mob Psycho 100 vs One-Punch Man, same author so which should I start?", "kaguya sama or horimiya?",
        "Which is better, Ranma 1/2 or Inuyasha?", "Is Akira or Ghost in the Shell easier to get into?",
        "My Hero Academia vs Jujutsu Kaisen, which is darker?",
        "which has more volumes, Detective Conan or One Piece?",
        "How does Delicious in Dungeon compare to Food Wars?",
        "what's the difference between kodomo and shonen manga?",
        "Fruits Basket or Kamisama Kiss for a shojo beginner?",
        "Sakamoto Days or Chainsaw Man, which is more fun?",
        "which is better value, the Japanese or English edition of Vinland Saga?",
        "Is the US version of Naruto vol 1 more expensive than the JP one?",
        "Lone Wolf and Cub vs Rurouni Kenshin for samurai fans",
        "Doraemon vs Chi's Sweet Home for a 5 year old",
        "The Promised Neverland vs Uzumaki, which is creepier?",
        "Yotsuba or Usagi Drop, which is more heartwarming?",
        "which is more realistic, Slam Dunk or Kuroko's Basketball?",
        "Witch Hat Atelier or Nausicaa, which has the better world-building?",
        "compare the English and Japanese editions of Attack on Titan",
        "what's better for a first manga, Spy x Family or Demon Slayer?",
        "JoJo vs Dragon Ball, which is more iconic?", "Which is longer, Kingdom or Detective Conan?",
        "Skip Beat! vs Nana, which drama is better?",
        "how is the comics_us version of Berserk different from the manga_jp one?",
        "Which store is cheaper for Haikyu?",
        "is buying the box set cheaper than buying the volumes one by one?",
        "Nodame Cantabile or Bocchi the Rock, which is funnier?",
        "Wotakoi or My Dress-Up Darling, which is more wholesome?",
        "Vampire Knight vs Kamisama Kiss, which romance is better?",
        "cheaper per volume: Spy x Family or Sakamoto Days?",
        "Astro Boy vs Doraemon, which is the better classic for kids?",
        "Which has better fights, Bleach or Hunter x Hunter?",
        "help me choose between Frieren and Mushoku Tensei",
        "Banana Fish or Tokyo Revengers, which has better gang drama?",
        "dr stone vs promised neverland which is smarter",
        "Boys Over Flowers or Ouran, which is the better rich-kids romcom?",
        "鬼滅の刃と呪術廻戦はどう違いますか", "スパイファミリーとサカモトデイズ、どっちが面白い？", "ベルセルクとヴィンランド・サガ、どちらが暗いですか", "日本版と英語版の値段の違いを教えて",
        "少年漫画と青年漫画の違いは何ですか", "デスノートとモンスター、どっちから読むべき？", "ハイキューと黒子のバスケを比べるとどうですか", "フルーツバスケットとNANA、どっちが泣ける？",
        "ワンパンマンとモブサイコ100の違いは？", "推しの子とかぐや様、どちらを先に読むべきですか", "進撃の巨人の通常版と特装版はどう違う？", "ドラゴンボールとナルト、どっちが長い？",
        "アメリカのストアと日本のストア、どちらが安いですか",
    ],
    "complaint": [
        "This is ridiculous, my order is a week late!", "The app keeps crashing when I open my cart",
        "Your customer service is terrible", "I got the wrong volume AGAIN",
        "the cover of my One Piece volume was bent when it arrived", "The delivery guy left my parcel in the rain and it's soaked",
        "I've been waiting 20 minutes for a support reply, this is unacceptable", "Why is shipping so expensive? That's a rip-off",
        "the package was crushed and two books have torn pages", "Nobody told me my preorder was delayed, very disappointed",
        "the search function is useless, it never finds anything", "I'm really unhappy with how my order was packed",
        "Your app logged me out and deleted my cart. So annoying", "I was charged twice for the same order!",
        "The tracking number you gave me doesn't work", "This chatbot is not helpful at all",
        "The book smelled like smoke when I opened it, gross", "the print quality of Berserk vol 3 is awful, pages are blurry",
        "sumimasen but this is the third time my delivery is late", "My preorder bonus card was missing from the box",
        "Yamato came while I was home and still left a missed delivery slip. terrible", "The prices went up overnight, not fair",
        "I hate that I can't use my points on shipping", "The website is so slow today it's unusable",
        "you sent me Naruto 3 instead of Naruto 8", "The box arrived open and half empty",
        "Very disappointed with the quality of the gift wrapping", "I never got a confirmation email and I'm frustrated",
        "my manga came with a huge scratch on the cover, not happy", "The courier was rude to me on the phone",
        "I waited all day for a delivery that never came", "Your coupon code didn't work and I paid full price, annoying",
        "the dust jacket is ripped on my new volume", "The recommendations you give are always bad",
        "I'm fed up with the constant stock problems", "Half the pages in my copy are printed upside down!",
        "Terrible experience, I'm never ordering from here again", "The password reset email never arrives, this is so frustrating",
        "The app shows the wrong price at checkout", "You cancelled my order without telling me!",
        "the delivery is late and nobody answers my emails", "the spine of my Attack on Titan box set is cracked",
        "I keep getting spam emails from your newsletter even after unsubscribing", "The support agent hung up on me",
        "my package is wet and the manga is ruined", "This is the worst online bookstore I've used",
        "Your konbini payment slip didn't work at 7-Eleven, wasted a trip",
        "届いた漫画の表紙が破れていました", "配達が遅すぎます。ひどいです", "アプリがすぐ落ちて使えません",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "my order is 10 days late and I'm really not happy about it",
        "This is the second time my parcel has been late. Unbelievable.",
        "the volume I got has a big coffee stain on it", "pages 40 to 60 are missing from my copy of Monster",
        "you sent me the English edition when I ordered the Japanese one",
        "I ordered vol 4 and got vol 5. seriously?",
        "the box was way too big and the books slid around and got damaged",
        "Your app won't let me log in at all", "I can't add anything to my cart, the button does nothing",
        "The chatbot keeps misunderstanding me, so frustrating",
        "I was charged but the order never appeared in my account", "my credit card got billed three times",
        "no shikishi in my preorder even though the page promised one",
        "the tracking number shows someone else's parcel",
        "the courier said nobody was home but I was home all day",
        "Your prices are way higher than other shops", "The shrink wrap was torn and the cover is scratched",
        "It's been three weeks. Three weeks! This shop is a joke.",
        "I'm really disappointed, the delivery was late again",
        "The new app update is terrible, I can't find my orders anymore",
        "Stop sending me push notifications every day", "the Japanese text on the product page is all garbled",
        "your support team closed my ticket without answering",
        "the gift wrap was torn when it arrived, embarrassing since it was a present",
        "My coupon was rejected at checkout for no reason", "the points from my last purchase never showed up",
        "The book I got has a loose binding and pages are falling out", "Your delivery driver was very rude",
        "My order got cancelled and no one explained why",
        "The price dropped the day after I bought it, that's annoying",
        "I got a box full of crushed books. Awful.",
        "the app says out of stock for things that are clearly in stock",
        "ugh, wrong item again, this keeps happening",
        "The konbini payment deadline was too short and my order got cancelled",
        "The parcel was left outside in the snow", "you guys lost my package and nobody cares",
        "Why do I have to pay customs fees? Nobody warned me",
        "Terrible packaging, just a thin envelope for five books",
        "This is my third complaint this month and nothing changes",
        "The search shows manga from the wrong store", "I've been on hold with support for an hour",
        "the english translation in this volume is full of typos",
        "the book i recieved is a different printing than the picture, very misleading",
        "Your email receipts never arrive",
        "you charged me shipping even though my order was over the free shipping limit",
        "unacceptable service, I'm done with this store",
        "my order is late and the tracking hasn't moved in days, really frustrating",
        "届いた本に折れ目がついていました", "注文してから2週間たってもまだ届きません。ひどい", "箱がつぶれていて、中の本も傷んでいました", "3巻を頼んだのに4巻が来ました",
        "二重に請求されています", "電話が全然つながらない", "配達員の態度が悪かった", "アプリが重くて使い物になりません", "ログインできなくて困っています", "予約特典が入っていませんでした",
        "ポイントが付与されていません", "梱包が雑すぎます", "雨で本が濡れていました。最悪です",
    ],
    "return_refund": [
        "I want to return my order", "How do I return a manga I bought?", "Can I get a refund for MA-100198?",
        "my package arrived damaged, I want a refund", "I received the wrong volume, can I exchange it?",
        "Please cancel my order MA-100251 and refund me", "I'd like to exchange vol 2 for vol 3",
        "When will I get my refund for the returned Berserk volume?", "refund please",
        "How do I print a return label?", "I ordered the same book twice by mistake, can I send one back?",
        "I already opened the shrink wrap on my volume, can I still return it?", "The manga is damaged, please send me a replacement",
        "I changed my mind about Chainsaw Man vol 2, can I return it?", "how do i get my money back",
        "Is it too late to return something I got 10 days ago?", "I want to cancel my preorder and get my money back",
        "start a return for my last order", "The book arrived with torn pages, I'd like a replacement copy",
        "Can I get store credit instead of a refund?", "I sent the item back last week, has my refund been processed?",
        "my refund hasn't shown up on my card yet", "I want to return the whole Haikyu bundle",
        "Can you refund the shipping fee too since the item was wrong?", "Exchange my damaged copy please",
        "how do i send back a box set", "Please refund me for the missing volume in my bundle",
        "I paid at the konbini, how will I get my refund?", "My order got cancelled, when do I get the money back?",
        "sumimasen, I want to henpin (return) this manga", "The volume I received is a misprint, I want a new copy",
        "Can I return a gift I received?", "i want a refund for the parcel that never arrived",
        "I'd like to swap the Japanese edition for the English one", "Return request for order MA-100240",
        "refund my points please, the order was cancelled", "Do I need to pay for return shipping for my item?",
        "Can I return my order at a convenience store?", "cancel and refund order MA-100245",
        "The wrong item came, how do I return it and get the right one?", "Is my return approved yet?",
        "the book was water damaged, I want my money back", "I want to return Spy x Family vol 4, I bought two copies",
        "I returned MA-100112, how much will I get back?", "Can the refund go to PayPal instead of my card?",
        "I need to exchange a volume with a printing defect", "please process a refund for my damaged Uzumaki",
        "返品したいです", "返金はいつになりますか", "破損していたので交換してください",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "I'd like to return Bleach vol 3, I ordered it by accident",
        "vol 6 arrived instead of vol 7, please exchange", "please cancel my preorder for Kaiju No. 8",
        "please stop order MA-100251 before it ships",
        "My copy of Akira has a printing error, can you send a replacement?",
        "The cover was torn, I want my money back", "how do I return something I bought in the US store?",
        "I returned the box set two weeks ago and still no refund",
        "has my return for MA-100112 been processed?", "refund status for my returned order?",
        "I want a refund, the book came with water damage",
        "Can I return an unopened Witch Hat Atelier volume?",
        "return label please, I need to send back my order",
        "can I exchange Horimiya vol 2 for vol 1? I bought them out of order",
        "It's been lost for two weeks, just give me my money back",
        "Can you cancel the Sakamoto Days part of my order and refund that?",
        "i got charged twice, please refund one of them",
        "My preorder bonus was missing, can I get a partial refund?",
        "I'm not happy with the condition, I want to send it back",
        "How long will my refund take? I sent the books back on Monday",
        "I'd like the refund to go to my original card", "Where do I drop off my return?",
        "I changed my mind, can I return the Berserk deluxe?", "can i return part of my order",
        "I received a damaged Detective Conan vol 2, please exchange it",
        "Please refund MA-100245, the books were soaked", "I'd rather have store credit for my return",
        "can I exchange a volume I got as a gift?", "cancel my order please", "refund pls",
        "I want to return three volumes from my last order",
        "Please cancel the whole order, I found it elsewhere",
        "my return was rejected, why? I sent it within 14 days",
        "I sent back the wrong item by mistake, can you help with my return?",
        "The replacement you sent is also damaged, I want a refund now",
        "how do i return my konbini-paid order", "Has the warehouse received my returned parcel?",
        "can you pick up the return from my house?", "henpin shitai desu, Yotsuba vol 2 was a duplicate",
        "I want a full refund including shipping for the damaged books",
        "My refund was approved but nothing on my card after 10 days", "exchange please, wrong volume came",
        "I'd like to return my My Hero Academia box set for a refund",
        "can I cancel just one item from MA-100251?",
        "the books arrived after I needed them, I want to return them",
        "my order is so late I just want to cancel it and get refunded",
        "wrong book again. send the right one and take this back",
        "返品の手続きをしたいです", "間違えて注文したのでキャンセルしてください", "注文を取り消して、お金を返してください", "破れていたので新しいものと取り替えてください",
        "返金はもう処理されましたか", "返品した商品は届きましたか", "着払いで返品できますか", "2冊届いたので1冊返品したい", "予約をキャンセルしたいです",
        "落丁があったので交換をお願いします", "返金がまだ口座に入っていません", "汚れていたので返金してもらえますか", "間違った巻が届いたので、正しい巻と交換してください",
    ],
    "chitchat": [
        "What's your favourite anime?", "tell me a joke", "Who are you?", "Are you a robot?",
        "thank you!", "thanks, bye", "How's the weather in Tokyo?", "lol", "what's your name",
        "Do you like cats?", "I'm bored", "good night", "you're awesome", "What time is it in Japan?",
        "Are you human?", "Do you read manga yourself?", "Who would win, Goku or Saitama?",
        "I just had ramen for lunch", "arigatou gozaimasu!", "That's all, thanks for the help",
        "how old are you", "ok cool", "Do you dream of electric sheep?", "Which Pokémon is your favourite?",
        "It's raining so hard today", "see you later!", "What's the meaning of life?",
        "Sing me a song", "I love you MangaAssist", "Who made you?", "Do you have feelings?",
        "What's your favourite food?", "haha nice", "I'm going to Comiket next month!", "Is it summer in Japan now?",
        "can you speak japanese?", "I think I'll watch anime tonight", "bye bye",
        "Do you like Studio Ghibli movies?", "You're funny", "What did you do today?",
        "Have you been to Akihabara?", "mata ne!", "My cat just knocked over my coffee",
        "Tell me something interesting", "What's your favourite colour?", "wow ok",
        "ありがとうございました", "今日は暑いですね", "あなたは誰ですか",
        # second batch: new examples, written separately from HELDOUT and EVAL (check() enforces it)
        "thanks so much, that helped", "ok thank you, bye!", "see you tomorrow", "cheers mate", "ty",
        "awesome, thanks", "what's your favourite Studio Ghibli movie?", "Do you like dogs or cats more?",
        "Who's stronger, Luffy or Naruto?", "Goku vs Superman, who wins?",
        "what's the weather like in Osaka today?", "I just got back from Japan!", "I'm so tired today",
        "do you watch anime?", "Are you a girl or a boy?", "Which is cuter, Pikachu or Totoro?",
        "what languages do you speak?", "you're so helpful, I love it", "What's your favourite season?",
        "my exam is tomorrow, wish me luck", "knock knock", "what AI model are you?",
        "I'm learning Japanese, it's hard lol", "do you get lonely?", "never mind, that's all", "hmm ok",
        "nice!", "what's 2+2", "can you tell me a riddle?",
        "I watched the new Demon Slayer movie yesterday, so good",
        "Do you think Ghibli will make another movie?", "how was your day?",
        "I'm cosplaying as Nezuko at a convention next week", "lol you're funny", "goodbye and thanks again",
        "have a nice day!", "Do you like sushi?", "can we just chat for a bit?",
        "what's the best ramen shop in Tokyo?", "is Mt Fuji worth climbing?",
        "thanks, you've been a great help", "gotta go, later", "I can't sleep",
        "what do you think about AI taking over the world?", "my favourite anime is Naruto, what's yours?",
        "sorry, wrong chat", "I had curry for dinner tonight", "it's so humid here today",
        "my cat is sleeping on my keyboard lol", "just finished work, long day",
        "Zoro or Sanji, who's cooler?",
        "ありがとう！助かりました", "またね", "じゃあね、バイバイ", "好きなアニメは何？", "雨が止まないね", "お腹すいた", "あなたはロボットですか", "なぞなぞ出して",
        "どうもありがとうございます", "ルフィと悟空、どっちが強い？", "週末は何してるの？", "趣味は何ですか", "了解です、ありがとう",
    ],
}

HELDOUT = {
    "greeting": [
        "hello there, manga helper", "Good morning from Kyoto", "greetings and salutations, bot", "Hi, happy Friday",
        "moshi moshi", "Hey, good evening to you", "hallo", "Hi everyone", "Oi! hello",
        "Hey there, just popping in", "Good morning! Lovely day", "Yahoo~ hello", "ハロー！", "はじめまして、よろしくお願いします",
    ],
    "faq": [
        "Do you accept PayPay?", "what happens if I don't pay my konbini slip in time?",
        "How long does EMS take to Europe?", "Is there a fee for cash on delivery?",
        "Do points expire if I don't use them?", "Can I have my order delivered to FamilyMart?",
        "do I pay VAT when ordering to Germany?", "How many addresses can I save in my account?",
        "Is two-step verification available?", "What does the demographic label on products mean?",
        "Do you give discounts to libraries?", "How often is stock updated in the app?",
        "ギフトラッピングはできますか", "予約注文はいつ請求されますか",
    ],
    "order_status": [
        "Is my parcel still on schedule?", "where is order MA-100226 right now",
        "I can't find my shipping confirmation, has it gone out?", "When should I expect the Fruits Basket books?",
        "Tracking for MA-100230 please", "has the courier picked up my order yet",
        "my Kingdom volumes, are they shipped?", "eta on my delivery?", "Is my UPS package arriving today?",
        "what's the latest on my purchase from last Tuesday", "could you tell me the delivery date of my order",
        "sumimasen, my nimotsu, when does it come?", "私の荷物は今どこにありますか", "配達予定日を教えてください",
    ],
    "product_search": [
        "Do you have Vinland Saga volume 4?", "is march comes in like a lion in stock",
        "How much does Nausicaä of the Valley of the Wind vol 1 cost?", "find books by Hiromu Arakawa",
        "Is Kaguya-sama volume 5 available in the comics_us store?", "Do you stock Laid-Back Camp?",
        "looking for parasyte vol 2", "what's the release date of Dandadan vol 5?",
        "Show me every Mob Psycho 100 volume you carry", "Is The Rose of Versailles sold here?",
        "need price and stock for Wotakoi vol 1", "Do you have Banana Fish?",
        "チェンソーマンの3巻は在庫ありますか", "呪術廻戦の最新巻はいくらですか",
    ],
    "recommendation": [
        "I finished Dungeon Meshi, what's next for me?", "what would you suggest for someone who loves jazz?",
        "Any manga with found family vibes like Spy x Family?", "Recommend a manga for my mom who likes cooking shows",
        "I want a thriller that keeps me up at night", "Suggest three manga for a long weekend",
        "looking for a wholesome manga to relax with", "What do you recommend for a fan of Rurouni Kenshin?",
        "Which series would suit a teenage girl who likes magic?", "give me a recommendation for a dark fantasy",
        "gift for a coworker who just got into anime?", "what are some underrated seinen titles",
        "ハイキューが好きな人におすすめの漫画は？", "泣ける漫画を教えて",
    ],
    "comparison": [
        "Monster vs 20th Century Boys for a first Urasawa read?", "How does Mushishi compare to Witch Hat Atelier in tone?",
        "which is the better isekai, Slime or Mushoku Tensei?", "Fire Force or Hell's Paradise, which has better fights?",
        "Is the comics_us Frieren cheaper than the manga_jp one?", "Chainsaw Man vs Dandadan, which is weirder?",
        "Should I start with Nodame Cantabile or Your Lie in April?", "compare Golden Kamuy with Kingdom",
        "What distinguishes josei from shojo manga?", "Yona of the Dawn or Fushigi Yugi, which has the better heroine?",
        "Which is more beginner-friendly, One Piece or Naruto?", "Kaiju No. 8 compared to Attack on Titan?",
        "ワンピースとドラゴンボール、どちらがおすすめですか", "フリーレンとダンジョン飯を比べてください",
    ],
    "complaint": [
        "The corners of every volume were dented, awful packaging", "I'm extremely annoyed, my delivery was supposed to come yesterday",
        "the app froze during payment and I don't know if it went through", "Your assistant gave me totally wrong information",
        "Why does the checkout page keep erroring out?", "My order came with somebody else's invoice in it, that's a privacy problem",
        "I'm so disappointed, the book I got looks used", "The delivery driver threw my box over the fence",
        "it took forever to load the catalog, bad app", "nobody has replied to my email in three days",
        "this is unacceptable, the colour pages are smudged", "Worst service ever, my preorder came two weeks late",
        "注文と違う商品が届いて困っています", "サポートの対応が悪すぎる",
    ],
    "return_refund": [
        "I'd like to send back Kingdom vol 2, it's unread", "Where is my refund for the cancelled order?",
        "The set came with a damaged volume, please replace just that one", "I got my manga 20 days ago from the US store, can I still send it back?",
        "I don't want MA-100248 anymore, cancel it so I'm not charged", "Could I exchange this for the deluxe edition instead?",
        "my item was lost in the mail, can I get reimbursed?", "I was refunded the wrong amount for my return",
        "Can you email me a prepaid return label?", "my Nana volume arrived bent, I want to return it for a refund",
        "Refund to my gift card balance please", "want to return gift-wrapped item I got as a present",
        "この漫画を返品して返金してほしい", "交換の手続きを教えてください",
    ],
    "chitchat": [
        "Do you ever get tired of talking about manga?", "what's your favourite manga of all time?",
        "It's snowing here, so pretty", "Cool, thanks a lot!", "Are you smarter than ChatGPT?",
        "Tell me a fun fact about Japan", "You have a nice personality", "Which anime opening is the best?",
        "I'm eating onigiri right now", "ok see ya", "do you sleep?", "Who's your favourite character?",
        "おやすみなさい", "面白い話をして",
    ],
}


# ---------------------------------------------------------------------------
# Retrieval evaluation set (data/eval/retrieval.jsonl)
# ---------------------------------------------------------------------------
# Hand-written shopper queries with the catalog entries and documents that answer them. They
# measure retrieval only: never copy them (or rewordings of them) into TRAIN/HELDOUT or any other
# data used to build a model. Relevant keys: "series:<series>" (any product of that series in the
# query's store), P(series, volume) (resolved to "product:<id>" of that store when generating) and
# "doc:<document id>" (a document of that store or of "*").
EVAL_KINDS = ("exact_title", "misspelled_title", "plot", "genre_mood", "japanese", "faq_policy")
JP, US = "manga_jp", "comics_us"


def P(series: str, vol: int) -> tuple[str, str, int]:
    return ("product", series, vol)


def SR(*names: str) -> list[str]:
    return [f"series:{n}" for n in names]


def DOC(*ids: str) -> list[str]:
    return [f"doc:{i}" for i in ids]


# genre/mood label sets shared by an English and a Japanese query (each a subset of that store)
SPORTS_JP = SR("Haikyu!!", "Slam Dunk", "Blue Lock", "Kuroko's Basketball", "Chihayafuru")
KODOMO_JP = SR("Doraemon", "Pokémon Adventures", "Yo-kai Watch", "Chi's Sweet Home", "Hamtaro")
SCARY = SR("Uzumaki", "Parasyte", "Tokyo Ghoul", "The Promised Neverland")
COOKING = SR("Food Wars!: Shokugeki no Soma", "Delicious in Dungeon", "What Did You Eat Yesterday?",
             "The Way of the Househusband")
MUSIC = SR("Bocchi the Rock!", "Nana", "Your Lie in April", "Nodame Cantabile")

# (store, kind, query, relevant)
EVAL = [
    # ------------------------------------------------------------ exact_title
    (JP, "exact_title", "one piece", SR("One Piece")),
    (JP, "exact_title", "Do you have Jujutsu Kaisen volume 3?", [P("Jujutsu Kaisen", 3)]),
    (JP, "exact_title", "Chainsaw Man vol 2", [P("Chainsaw Man", 2)]),
    (JP, "exact_title", "kingdom", SR("Kingdom")),
    (JP, "exact_title", "Frieren: Beyond Journey's End", SR("Frieren: Beyond Journey's End")),
    (JP, "exact_title", "blue giant manga", SR("Blue Giant")),
    (JP, "exact_title", "is spy x family 4 in stock?", [P("Spy x Family", 4)]),
    (JP, "exact_title", "Vagabond", SR("Vagabond")),
    (JP, "exact_title", "apothecary diaries 3, japanese edition", [P("The Apothecary Diaries", 3)]),
    (JP, "exact_title", "chihayafuru", SR("Chihayafuru")),
    (JP, "exact_title", "do you carry Golden Kamuy", SR("Golden Kamuy")),
    (JP, "exact_title", "Hamtaro", SR("Hamtaro")),
    (JP, "exact_title", "oshi no ko volume 5 please", [P("Oshi no Ko", 5)]),
    (US, "exact_title", "Berserk vol 1", [P("Berserk", 1)]),
    (US, "exact_title", "Monster by Naoki Urasawa", SR("Monster")),
    (US, "exact_title", "witch hat atelier", SR("Witch Hat Atelier")),
    (US, "exact_title", "Kirby Manga Mania", SR("Kirby Manga Mania")),
    (US, "exact_title", "do you have Uzumaki?", SR("Uzumaki")),
    (US, "exact_title", "Delicious in Dungeon volume 2", [P("Delicious in Dungeon", 2)]),
    (US, "exact_title", "Haikyu!! Vol. 5", [P("Haikyu!!", 5)]),
    (US, "exact_title", "vinland saga", SR("Vinland Saga")),
    (US, "exact_title", "looking for Banana Fish", SR("Banana Fish")),
    (US, "exact_title", "fruits basket 1", [P("Fruits Basket", 1)]),
    (US, "exact_title", "bocchi the rock", SR("Bocchi the Rock!")),
    (US, "exact_title", "Nausicaa of the Valley of the Wind", SR("Nausicaä of the Valley of the Wind")),
    (US, "exact_title", "tokyo ghoul vol 4 english", [P("Tokyo Ghoul", 4)]),
    # ------------------------------------------------------- misspelled_title
    (JP, "misspelled_title", "one peice", SR("One Piece")),
    (JP, "misspelled_title", "naurto vol 1", [P("Naruto", 1)]),
    (JP, "misspelled_title", "jujutsu kaisan", SR("Jujutsu Kaisen")),
    (JP, "misspelled_title", "demon slayor", SR("Demon Slayer: Kimetsu no Yaiba")),
    (JP, "misspelled_title", "full metal alchemest", SR("Fullmetal Alchemist")),
    (JP, "misspelled_title", "kagura sama love is war", SR("Kaguya-sama: Love Is War")),
    (JP, "misspelled_title", "frieran", SR("Frieren: Beyond Journey's End")),
    (JP, "misspelled_title", "do u have spy family", SR("Spy x Family")),
    (JP, "misspelled_title", "hunterxhunter", SR("Hunter x Hunter")),
    (JP, "misspelled_title", "golden kamui", SR("Golden Kamuy")),
    (JP, "misspelled_title", "ouran highschool host clib", SR("Ouran High School Host Club")),
    (US, "misspelled_title", "atack on titan", SR("Attack on Titan")),
    (US, "misspelled_title", "chainsawman vol 4", [P("Chainsaw Man", 4)]),
    (US, "misspelled_title", "deathnote", SR("Death Note")),
    (US, "misspelled_title", "berzerk", SR("Berserk")),
    (US, "misspelled_title", "haikyuu", SR("Haikyu!!")),
    (US, "misspelled_title", "fruit basket manga", SR("Fruits Basket")),
    (US, "misspelled_title", "jojos bizzare adventure", SR("JoJo's Bizarre Adventure")),
    (US, "misspelled_title", "promised neverlnd", SR("The Promised Neverland")),
    (US, "misspelled_title", "tokyo goul", SR("Tokyo Ghoul")),
    (US, "misspelled_title", "komi cant comunicate", SR("Komi Can't Communicate")),
    (US, "misspelled_title", "that time i got reincarnated as a slim", SR("That Time I Got Reincarnated as a Slime")),
    # ------------------------------------------------------------------- plot
    (US, "plot", "the one where a boy with a rubber body wants to be king of the pirates", SR("One Piece")),
    (US, "plot", "manga where a notebook kills anybody whose name you write in it", SR("Death Note")),
    (US, "plot", "bald guy who wins every fight with one hit and is super bored about it", SR("One-Punch Man")),
    (US, "plot", "a spy has to fake having a family for a mission and the little girl he adopts is secretly a telepath",
     SR("Spy x Family")),
    (US, "plot", "kids at an orphanage find out they're basically livestock for demons", SR("The Promised Neverland")),
    (US, "plot", "doctor saves a kid's life and the kid grows up to be a serial killer", SR("Monster")),
    (US, "plot", "alien worm thing takes over a teenager's hand instead of his brain and they team up",
     SR("Parasyte")),
    (US, "plot", "adventurers who cook and eat whatever monsters they fight in a dungeon", SR("Delicious in Dungeon")),
    (US, "plot", "a boy bullies a deaf girl at school and years later tries to make up for it", SR("A Silent Voice")),
    (US, "plot", "teen detective gets turned into a little kid by some poison and keeps solving murders",
     SR("Detective Conan")),
    (US, "plot", "the elf wizard who outlives her hero friends and travels around trying to figure out what they meant to her",
     SR("Frieren: Beyond Journey's End")),
    (US, "plot", "viking boy out for revenge on the guy who murdered his dad", SR("Vinland Saga")),
    (US, "plot", "retired assassin who got chubby and now runs a corner shop", SR("Sakamoto Days")),
    (US, "plot", "a lawyer and his boyfriend cooking dinner together on a budget", SR("What Did You Eat Yesterday?")),
    (JP, "plot", "everyone on earth gets petrified and a science nerd has to rebuild everything with chemistry",
     SR("Dr. Stone")),
    (JP, "plot", "loser in his twenties jumps back to his middle school days to save his ex from a gang",
     SR("Tokyo Revengers")),
    (JP, "plot", "martial artist who switches into a girl whenever cold water hits him", SR("Ranma 1/2")),
    (JP, "plot", "blue robot cat who pulls gadgets out of his pocket to help a lazy boy", SR("Doraemon")),
    (JP, "plot", "ninja kid with a fox monster sealed in him who wants to run the village someday", SR("Naruto")),
    (JP, "plot", "boy whose little sister was turned into a demon, so he becomes a swordsman to cure her",
     SR("Demon Slayer: Kimetsu no Yaiba")),
    (JP, "plot", "girl gets sucked into an ancient book and becomes a priestess who has to find seven warriors",
     SR("Fushigi Yugi")),
    (JP, "plot", "girl who knows everything about poisons solving mysteries inside the emperor's palace",
     SR("The Apothecary Diaries")),
    (JP, "plot", "kid from sendai practising saxophone by the river because he wants to be the best jazz musician ever",
     SR("Blue Giant")),
    (JP, "plot", "two brothers try to bring their dead mom back with alchemy and it goes horribly wrong",
     SR("Fullmetal Alchemist")),
    (JP, "plot", "war orphan who wants to become a top general and help unite ancient china", SR("Kingdom")),
    (JP, "plot", "teenage shogi pro living on his own who gets taken in by three sisters", SR("March Comes in Like a Lion")),
    (JP, "plot", "scary yakuza boss quits the mob to become a stay at home husband", SR("The Way of the Househusband")),
    # ------------------------------------------------------------- genre_mood
    (US, "genre_mood", "something cozy about camping", SR("Laid-Back Camp")),
    (US, "genre_mood", "a dark thriller full of mind games that messes with your head",
     SR("Death Note", "Monster", "The Promised Neverland", "20th Century Boys", "Oshi no Ko")),
    (JP, "genre_mood", "any good sports manga? volleyball, basketball, whatever", SPORTS_JP),
    (US, "genre_mood", "need a real tearjerker, something heartbreaking",
     SR("Your Lie in April", "A Silent Voice", "Fruits Basket", "March Comes in Like a Lion", "Nana",
        "Frieren: Beyond Journey's End", "Honey and Clover")),
    (JP, "genre_mood", "a relaxing food manga with lots of cooking, nothing violent", COOKING + SR("Oishinbo")),
    (US, "genre_mood", "funny high school romcom",
     SR("Kaguya-sama: Love Is War", "Ouran High School Host Club", "Boys Over Flowers", "Horimiya",
        "Komi Can't Communicate", "My Dress-Up Darling", "Ranma 1/2")),
    (JP, "genre_mood", "proper horror, creepy stuff not just action", SCARY),
    (US, "genre_mood", "any isekai recommendations?",
     SR("Mushoku Tensei: Jobless Reincarnation", "That Time I Got Reincarnated as a Slime", "Inuyasha",
        "Fushigi Yugi")),
    (JP, "genre_mood", "chill slice of life where nothing stressful happens",
     SR("Yotsuba&!", "Laid-Back Camp", "What Did You Eat Yesterday?", "Chi's Sweet Home", "Usagi Drop",
        "Mushishi", "Hamtaro", "The Way of the Househusband")),
    (US, "genre_mood", "manga about playing music, a band or piano or anything", MUSIC),
    (JP, "genre_mood", "historical samurai stuff with sword fights",
     SR("Rurouni Kenshin", "Vagabond", "Lone Wolf and Cub", "Hell's Paradise: Jigokuraku")),
    (US, "genre_mood", "shojo romance with lots of drama",
     SR("Fruits Basket", "Nana", "Skip Beat!", "Vampire Knight", "The Rose of Versailles", "Boys Over Flowers")),
    (JP, "genre_mood", "my daughter just started first grade, what manga would she like", KODOMO_JP),
    (US, "genre_mood", "something for young kids, funny and easy to read",
     SR("Doraemon", "Pokémon Adventures", "Yo-kai Watch", "Chi's Sweet Home", "Kirby Manga Mania")),
    (JP, "genre_mood", "mind-bending sci-fi with cyberpunk vibes", SR("Akira", "Ghost in the Shell")),
    (US, "genre_mood", "a long fantasy adventure with a real journey",
     SR("Fullmetal Alchemist", "Hunter x Hunter", "Frieren: Beyond Journey's End", "Witch Hat Atelier",
        "Delicious in Dungeon", "Mushoku Tensei: Jobless Reincarnation",
        "Nausicaä of the Valley of the Wind", "Yona of the Dawn", "Inuyasha", "Fushigi Yugi")),
    (JP, "genre_mood", "funny workplace manga", SR("Wotakoi: Love Is Hard for Otaku", "Cells at Work!")),
    (US, "genre_mood", "martial arts manga with tons of fights",
     SR("Naruto", "Dragon Ball", "Rurouni Kenshin", "Ranma 1/2", "Vagabond")),
    (JP, "genre_mood", "a mystery where someone solves cases", SR("Detective Conan", "The Apothecary Diaries", "Death Note")),
    (US, "genre_mood", "romance about grown-ups, not high schoolers",
     SR("Wotakoi: Love Is Hard for Otaku", "Nana", "Honey and Clover", "Nodame Cantabile", "Princess Jellyfish",
        "What Did You Eat Yesterday?")),
    (JP, "genre_mood", "something with yokai and japanese spirits",
     SR("Dandadan", "Yo-kai Watch", "Kamisama Kiss", "Inuyasha", "Mushishi")),
    # --------------------------------------------------------------- japanese
    (JP, "japanese", "ONE PIECEありますか？", SR("One Piece")),
    (JP, "japanese", "進撃の巨人 1巻", [P("Attack on Titan", 1)]),
    (JP, "japanese", "鬼滅の刃", SR("Demon Slayer: Kimetsu no Yaiba")),
    (JP, "japanese", "呪術廻戦 3巻 まだ買えますか", [P("Jujutsu Kaisen", 3)]),
    (JP, "japanese", "葬送のフリーレン", SR("Frieren: Beyond Journey's End")),
    (JP, "japanese", "聲の形を全巻そろえたい", SR("A Silent Voice")),
    (JP, "japanese", "SPY×FAMILY 4巻", [P("Spy x Family", 4)]),
    (JP, "japanese", "キングダムって売ってますか", SR("Kingdom")),
    (JP, "japanese", "ゴールデンカムイの2巻ください", [P("Golden Kamuy", 2)]),
    (JP, "japanese", "薬屋のひとりごと", SR("The Apothecary Diaries")),
    (JP, "japanese", "【推しの子】の1巻", [P("Oshi no Ko", 1)]),
    (JP, "japanese", "しんげきのきょじん", SR("Attack on Titan")),
    (JP, "japanese", "きめつのやいば", SR("Demon Slayer: Kimetsu no Yaiba")),
    (JP, "japanese", "じゅじゅつかいせん", SR("Jujutsu Kaisen")),
    (JP, "japanese", "はがねのれんきんじゅつし", SR("Fullmetal Alchemist")),
    (JP, "japanese", "ちぇんそーまん", SR("Chainsaw Man")),
    (JP, "japanese", "すぱいふぁみりー", SR("Spy x Family")),
    (JP, "japanese", "わんぴーす 1かん", [P("One Piece", 1)]),
    (JP, "japanese", "くすりやのひとりごと", SR("The Apothecary Diaries")),
    (JP, "japanese", "こえのかたち", SR("A Silent Voice")),
    (JP, "japanese", "めいたんていこなん", SR("Detective Conan")),
    (JP, "japanese", "ゴムの体の少年が海賊王を目指す漫画", SR("One Piece")),
    (JP, "japanese", "名前を書くと人が死ぬノートの話", SR("Death Note")),
    (JP, "japanese", "妹が鬼になってしまった少年が鬼と戦う話", SR("Demon Slayer: Kimetsu no Yaiba")),
    (JP, "japanese", "未来から来たネコ型ロボットのマンガ", SR("Doraemon")),
    (JP, "japanese", "ジャズのサックス奏者が世界一を目指す漫画", SR("Blue Giant")),
    (JP, "japanese", "孤児院の子どもたちが鬼から逃げ出す話", SR("The Promised Neverland")),
    (JP, "japanese", "元殺し屋が太ってコンビニの店長をしている漫画", SR("Sakamoto Days")),
    (JP, "japanese", "キャンプの癒し系漫画が読みたい", SR("Laid-Back Camp")),
    (JP, "japanese", "熱いスポーツ漫画でおすすめある？", SPORTS_JP),
    (JP, "japanese", "泣ける恋愛漫画ありますか",
     SR("Your Lie in April", "A Silent Voice", "Nana", "Honey and Clover", "Fruits Basket")),
    (JP, "japanese", "子ども向けの漫画でおすすめは？", KODOMO_JP),
    (JP, "japanese", "本当に怖いホラー漫画", SCARY),
    (JP, "japanese", "料理漫画が好きです。何かおすすめありますか", COOKING + SR("Oishinbo")),
    (JP, "japanese", "異世界転生もの", SR("Mushoku Tensei: Jobless Reincarnation", "That Time I Got Reincarnated as a Slime")),
    (JP, "japanese", "バンドとか音楽がテーマの漫画ある？", MUSIC + SR("Blue Giant")),
    (JP, "japanese", "何円以上買えば送料無料になりますか", DOC("faq-shipping-domestic-jp")),
    (JP, "japanese", "ファミマで代金を払えますか", DOC("faq-payment-methods-jp")),
    (JP, "japanese", "返品したいのですが、何日以内なら大丈夫ですか", DOC("policy-returns-jp")),
    (JP, "japanese", "予約特典はつきますか", DOC("policy-preorder-bonuses")),
    (JP, "japanese", "海外発送はしていますか", DOC("faq-shipping-international")),
    (JP, "japanese", "貯まったポイントはいつ消えますか", DOC("faq-points-program")),
    # ------------------------------------------------------------- faq_policy
    (JP, "faq_policy", "what do you charge for delivery inside japan", DOC("faq-shipping-domestic-jp")),
    (JP, "faq_policy", "which cards does the japanese store take? is JCB ok", DOC("faq-payment-methods-jp")),
    (JP, "faq_policy", "I changed my mind about a volume, can I still send it back after a week?", DOC("policy-returns-jp")),
    (JP, "faq_policy", "ship to france? how long would it take", DOC("faq-shipping-international")),
    (JP, "faq_policy", "will the post office make me pay VAT on import in the UK", DOC("faq-customs-duties")),
    (JP, "faq_policy", "do preorders come with a bonus illustration card or shikishi?", DOC("policy-preorder-bonuses")),
    (JP, "faq_policy", "can I pick my order up at a 7-Eleven instead of home delivery", DOC("policy-konbini-pickup")),
    (JP, "faq_policy", "what are points worth and when do they expire", DOC("faq-points-program")),
    (JP, "faq_policy", "can you wrap it as a present and add a little message card", DOC("faq-gift-wrapping")),
    (JP, "faq_policy", "is everything here the original japanese language version?", DOC("faq-store-differences", "faq-digital-vs-print")),
    (JP, "faq_policy", "I forgot my password and can't log in", DOC("faq-password-reset")),
    (JP, "faq_policy", "can I still cancel an order I placed this morning", DOC("policy-order-cancellation")),
    (JP, "faq_policy", "how long until a refund shows up on my card", DOC("policy-refund-timing")),
    (JP, "faq_policy", "can i pay cash when the parcel is delivered", DOC("faq-payment-methods-jp")),
    (US, "faq_policy", "how much does shipping cost to Texas", DOC("faq-shipping-domestic-us")),
    (US, "faq_policy", "do you take apple pay", DOC("faq-payment-methods-us")),
    (US, "faq_policy", "how many days do I have to send something back", DOC("policy-returns-us")),
    (US, "faq_policy", "do you charge sales tax?", DOC("policy-sales-tax-us", "faq-price-match")),
    (US, "faq_policy", "my book came with a torn cover, what do I do", DOC("policy-damaged-items")),
    (US, "faq_policy", "tracking says delivered but nothing is at my door", DOC("policy-delivery-problems")),
    (US, "faq_policy", "I bought the wrong volume by mistake, can I swap it for the right one?", DOC("policy-exchanges")),
    (US, "faq_policy", "can I order 10 copies of the same volume for my book club", DOC("policy-order-limits")),
    (US, "faq_policy", "where do I find the tracking number for my package", DOC("faq-order-tracking")),
    (US, "faq_policy", "do you sell ebooks or just physical books", DOC("faq-digital-vs-print")),
    (US, "faq_policy", "when will sold out volumes come back in stock", DOC("faq-stock-restock")),
    (US, "faq_policy", "is there a discount if I buy a whole series at once", DOC("faq-volume-bundles")),
    (US, "faq_policy", "what hours is customer service open", DOC("faq-contact-support")),
    (US, "faq_policy", "got any coupon codes?", DOC("faq-newsletter-coupons")),
    (US, "faq_policy", "is this ok for a 12 year old? what do the ratings mean", DOC("faq-age-ratings")),
]
MIN_EVAL, MIN_EVAL_JAPANESE, MIN_EVAL_PER_KIND = 150, 35, 15


def eval_rows(products: list[dict]) -> list[dict]:
    by_vol = {(p["store_id"], p["series"], p["volume"]): p["id"] for p in products}
    rows = []
    for n, (store, kind, query, relevant) in enumerate(EVAL, 1):
        keys = []
        for r in relevant:
            if isinstance(r, tuple):
                pid = by_vol.get((store, r[1], r[2]))
                keys.append(f"product:{pid}" if pid else f"product:?{r[1]}#{r[2]}")  # check() reports it
            else:
                keys.append(r)
        rows.append({"id": f"q{n:03d}", "store_id": store, "kind": kind, "query": query, "relevant": keys})
    return rows


# ---------------------------------------------------------------------------
# Writing and validation
# ---------------------------------------------------------------------------
FILES = {
    "products": DATA / "catalog" / "products.jsonl",
    "documents": DATA / "docs" / "documents.jsonl",
    "users": DATA / "users" / "users.jsonl",
    "orders": DATA / "users" / "orders.jsonl",
    "train": DATA / "intents" / "train.jsonl",
    "heldout": DATA / "intents" / "heldout.jsonl",
    "eval": DATA / "eval" / "retrieval.jsonl",
}

PRODUCT_FIELDS = {"id": str, "store_id": str, "title": str, "series": str, "volume": int, "author": str,
                  "genres": list, "demographic": str, "synopsis": str, "price_yen": int, "stock": int,
                  "release_date": str}
# Present on every manga_jp product and absent from every comics_us product.
JA_PRODUCT_FIELDS = {"series_ja": str, "series_reading": str, "title_ja": str}
KANA_READING = re.compile(r"[\u3041-\u3096\u30A1-\u30FA\u30FB\u30FC \u3000]+")
DOC_FIELDS = {"id": str, "store_id": str, "kind": str, "title": str, "body": str}
DOC_JA_FIELDS = {"title_ja": str, "body_ja": str}
USER_FIELDS = {"user_id": str, "name": str, "favourite_genres": list, "language": str, "store_id": str}
ORDER_FIELDS = {"order_id": str, "user_id": str, "store_id": str, "items": list, "status": str,
                "placed_at": str, "eta": str, "carrier": str, "tracking": str}
ITEM_FIELDS = {"product_id": str, "title": str, "quantity": int, "price_yen": int}
INTENT_FIELDS = {"text": str, "intent": str}
EVAL_FIELDS = {"id": str, "store_id": str, "kind": str, "query": str, "relevant": list}
JAPANESE_CHAR = re.compile(r"[\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uFF66-\uFF9F]")

MIN_PRODUCTS, MIN_SERIES, MIN_DOCS, MIN_ORDERS = 520, 70, 30, 15
MIN_TRAIN, MIN_HELDOUT = 100, 12
NEAR_DUP_JACCARD = 0.8  # train vs heldout similarity at or above this fails the check


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def intent_rows(table: dict[str, list[str]]) -> list[dict]:
    return [{"text": t, "intent": intent} for intent in INTENTS for t in table[intent]]


def generate() -> None:
    rng = random.Random(SEED)
    products = build_products(rng)
    orders = build_orders(products, random.Random(SEED + 1))
    write_jsonl(FILES["products"], products)
    write_jsonl(FILES["documents"], DOCUMENTS)
    write_jsonl(FILES["users"], USERS)
    write_jsonl(FILES["orders"], orders)
    write_jsonl(FILES["train"], intent_rows(TRAIN))
    write_jsonl(FILES["heldout"], intent_rows(HELDOUT))
    write_jsonl(FILES["eval"], eval_rows(products))


def read_jsonl(path: Path, errors: list[str]) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"{path.name}:{n}: invalid JSON ({e})")
                continue
            if not isinstance(obj, dict):
                errors.append(f"{path.name}:{n}: not an object")
                continue
            rows.append(obj)
    return rows


def check_fields(name: str, i: int, obj: dict, spec: dict, errors: list[str]) -> None:
    for k, t in spec.items():
        if k not in obj:
            errors.append(f"{name}[{i}]: missing field {k}")
        elif not isinstance(obj[k], t) or (t is int and isinstance(obj[k], bool)):
            errors.append(f"{name}[{i}]: field {k} should be {t.__name__}")
    extra = set(obj) - set(spec)
    if extra:
        errors.append(f"{name}[{i}]: unexpected fields {sorted(extra)}")


def is_date(s: str) -> bool:
    try:
        dt.date.fromisoformat(s)
        return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", s))
    except (TypeError, ValueError):
        return False


def norm(t: str) -> str:
    return re.sub(r"[^\w]+", " ", t.lower()).strip()


def squash(t: str) -> str:
    """Lower case without punctuation, spaces or underscores: "Hello, MangaAssist!" -> "hellomangaassist"."""
    return re.sub(r"[\W_]+", "", t.lower())


def overlap_units(t: str) -> set[str]:
    """Units compared for near-duplicates: character bigrams of the squashed text when it contains
    Japanese (written without spaces), otherwise its lower-case words."""
    if JAPANESE_CHAR.search(t):
        s = squash(t)
        return {s[i:i + 2] for i in range(len(s) - 1)} or {s}
    return set(re.findall(r"[^\W_]+", t.lower()))


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def check() -> int:
    errors: list[str] = []
    data = {k: read_jsonl(p, errors) for k, p in FILES.items()}

    # products
    products = data["products"]
    ids = set()
    titles = set()
    syn_per_series: dict[tuple, set] = {}
    ja_per_series: dict[str, tuple] = {}
    for i, p in enumerate(products):
        is_jp = p.get("store_id") == "manga_jp"
        check_fields("products", i, p, {**PRODUCT_FIELDS, **JA_PRODUCT_FIELDS} if is_jp else PRODUCT_FIELDS, errors)
        if is_jp:
            ja, reading, title_ja = (p.get(k) for k in JA_PRODUCT_FIELDS)
            if not all(isinstance(x, str) and x.strip() for x in (ja, reading, title_ja)):
                errors.append(f"products[{i}]: series_ja/series_reading/title_ja must be non-empty")
            else:
                if not KANA_READING.fullmatch(reading) or not reading.strip():
                    errors.append(f"products[{i}]: series_reading {reading!r} is not kana only")
                if title_ja != f"{ja} {p.get('volume')}":
                    errors.append(f"products[{i}]: title_ja {title_ja!r} != series_ja + volume")
                prev = ja_per_series.setdefault(p.get("series"), (ja, reading))
                if prev != (ja, reading):
                    errors.append(f"products[{i}]: series_ja/series_reading differ within series {p.get('series')!r}")
        pid = p.get("id", "")
        if not re.fullmatch(r"B0[A-Z0-9]{8}", str(pid)):
            errors.append(f"products[{i}]: bad id {pid!r}")
        if pid in ids:
            errors.append(f"products[{i}]: duplicate id {pid}")
        ids.add(pid)
        if p.get("store_id") not in STORES:
            errors.append(f"products[{i}]: bad store_id")
        if (p.get("store_id"), p.get("title")) in titles:
            errors.append(f"products[{i}]: duplicate title in store")
        titles.add((p.get("store_id"), p.get("title")))
        g = p.get("genres", [])
        if not g or any(x not in GENRES for x in g):
            errors.append(f"products[{i}]: bad genres {g}")
        if p.get("demographic") not in DEMOGRAPHICS:
            errors.append(f"products[{i}]: bad demographic")
        if not is_date(p.get("release_date")) or p["release_date"] > CATALOG_CUTOFF.isoformat():
            errors.append(f"products[{i}]: bad release_date {p.get('release_date')}")
        lo, hi = (480, 1500) if p.get("store_id") == "manga_jp" else (1100, 2500)
        if not (lo <= p.get("price_yen", 0) <= hi):
            errors.append(f"products[{i}]: price out of range {p.get('price_yen')}")
        if not (0 <= p.get("stock", -1) <= 200):
            errors.append(f"products[{i}]: stock out of range")
        key = (p.get("store_id"), p.get("series"))
        syn_per_series.setdefault(key, set())
        if p.get("synopsis") in syn_per_series[key]:
            errors.append(f"products[{i}]: synopsis repeated within series")
        syn_per_series[key].add(p.get("synopsis"))
    series = {p["series"] for p in products if "series" in p}
    by_id = {p["id"]: p for p in products if "id" in p}
    zero = sum(1 for p in products if p.get("stock") == 0)

    # documents
    docs = data["documents"]
    doc_ids = set()
    for i, d in enumerate(docs):
        check_fields("documents", i, d, DOC_FIELDS | {k: str for k in DOC_JA_FIELDS if k in d}, errors)
        ja = [d.get(k) for k in DOC_JA_FIELDS]
        if d.get("store_id") in ("*", "manga_jp") and not all(isinstance(x, str) and x.strip() for x in ja):
            errors.append(f"documents[{i}]: a document manga_jp shows needs non-empty title_ja and body_ja")
        elif any(x is not None for x in ja) and not all(isinstance(x, str) and x.strip() for x in ja):
            errors.append(f"documents[{i}]: title_ja and body_ja come as a non-empty pair")
        if d.get("id") in doc_ids:
            errors.append(f"documents[{i}]: duplicate id")
        doc_ids.add(d.get("id"))
        if d.get("kind") not in ("faq", "policy"):
            errors.append(f"documents[{i}]: bad kind")
        if d.get("store_id") not in ("*",) + STORES:
            errors.append(f"documents[{i}]: bad store_id")

    # users
    users = data["users"]
    user_store = {}
    for i, u in enumerate(users):
        check_fields("users", i, u, USER_FIELDS, errors)
        if u.get("user_id") in user_store:
            errors.append(f"users[{i}]: duplicate user_id")
        user_store[u.get("user_id")] = u.get("store_id")
        if u.get("store_id") not in STORES or any(g not in GENRES for g in u.get("favourite_genres", [])):
            errors.append(f"users[{i}]: bad store or genres")
    if user_store.get("u-demo") != "manga_jp":
        errors.append("users: u-demo missing or not manga_jp")

    # orders
    orders = data["orders"]
    order_ids = set()
    for i, o in enumerate(orders):
        check_fields("orders", i, o, ORDER_FIELDS, errors)
        if o.get("order_id") in order_ids or not re.fullmatch(r"MA-\d{6}", str(o.get("order_id"))):
            errors.append(f"orders[{i}]: bad/duplicate order_id")
        order_ids.add(o.get("order_id"))
        if o.get("status") not in ORDER_STATUSES:
            errors.append(f"orders[{i}]: bad status")
        if user_store.get(o.get("user_id")) != o.get("store_id"):
            errors.append(f"orders[{i}]: user/store mismatch")
        if not (is_date(o.get("placed_at")) and is_date(o.get("eta"))):
            errors.append(f"orders[{i}]: bad dates")
        shipped = o.get("status") not in ("processing", "cancelled")
        if shipped != bool(o.get("tracking")) or shipped != bool(o.get("carrier")):
            errors.append(f"orders[{i}]: carrier/tracking inconsistent with status")
        if not o.get("items"):
            errors.append(f"orders[{i}]: no items")
        for j, it in enumerate(o.get("items", [])):
            check_fields(f"orders[{i}].items", j, it, ITEM_FIELDS, errors)
            p = by_id.get(it.get("product_id"))
            if p is None:
                errors.append(f"orders[{i}].items[{j}]: unknown product {it.get('product_id')}")
            elif p["store_id"] != o.get("store_id") or p["title"] != it.get("title") or p["price_yen"] != it.get("price_yen"):
                errors.append(f"orders[{i}].items[{j}]: product store/title/price mismatch")
    demo_statuses = {o.get("status") for o in orders if o.get("user_id") == "u-demo"}
    if len(demo_statuses) < 3:
        errors.append("orders: u-demo needs >= 3 orders with different statuses")

    # intents
    counts = {}
    seen = {}
    for split in ("train", "heldout"):
        c = {k: 0 for k in INTENTS}
        for i, r in enumerate(data[split]):
            check_fields(split, i, r, INTENT_FIELDS, errors)
            if r.get("intent") not in INTENTS:
                errors.append(f"{split}[{i}]: bad intent {r.get('intent')}")
                continue
            c[r["intent"]] += 1
            key = norm(r["text"])
            if key in seen:
                errors.append(f"{split}[{i}]: text duplicates a {seen[key]} line: {r['text']!r}")
            seen[key] = split
        counts[split] = c
        minimum = MIN_TRAIN if split == "train" else MIN_HELDOUT
        for k, v in c.items():
            if v < minimum:
                errors.append(f"{split}: intent {k} has {v} < {minimum}")

    # train must not leak the held-out set or the retrieval queries: no train text equal to a
    # heldout text or an eval query once case, punctuation and spaces are removed, and no train
    # text with a Jaccard similarity >= NEAR_DUP_JACCARD to a heldout text (words; character
    # bigrams for Japanese)
    heldout_texts = [(r["text"], overlap_units(r["text"])) for r in data["heldout"] if isinstance(r.get("text"), str)]
    heldout_keys = {squash(t) for t, _ in heldout_texts}
    eval_keys = {squash(q["query"]) for q in data["eval"] if isinstance(q.get("query"), str)}
    for i, r in enumerate(data["train"]):
        text = r.get("text")
        if not isinstance(text, str):
            continue
        key = squash(text)
        if key in heldout_keys:
            errors.append(f"train[{i}]: text equals a heldout text: {text!r}")
        if key in eval_keys:
            errors.append(f"train[{i}]: text equals a retrieval eval query: {text!r}")
        units = overlap_units(text)
        for h, h_units in heldout_texts:
            sim = jaccard(units, h_units)
            if sim >= NEAR_DUP_JACCARD:
                errors.append(f"train[{i}]: {text!r} is a near-duplicate of heldout {h!r} (jaccard {sim:.2f})")

    # retrieval evaluation set
    series_in_store = {(p.get("store_id"), p.get("series")) for p in products}
    doc_store = {d.get("id"): d.get("store_id") for d in docs}
    syn_by_series: dict[str, list[str]] = {}
    for p in products:
        syn_by_series.setdefault(p.get("series"), []).append(norm(p.get("synopsis", "")))
    eval_counts = {k: 0 for k in EVAL_KINDS}
    eval_store_counts = {k: 0 for k in STORES}
    eval_ids: set = set()
    eval_queries: set = set()
    for i, q in enumerate(data["eval"]):
        check_fields("eval", i, q, EVAL_FIELDS, errors)
        qid, store, kind, text, rel = (q.get(k) for k in EVAL_FIELDS)
        if not re.fullmatch(r"q\d{3,}", str(qid)) or qid in eval_ids:
            errors.append(f"eval[{i}]: bad or duplicate id {qid!r}")
        eval_ids.add(qid)
        if store not in STORES:
            errors.append(f"eval[{i}]: bad store_id {store!r}")
        else:
            eval_store_counts[store] += 1
        if kind not in EVAL_KINDS:
            errors.append(f"eval[{i}]: bad kind {kind!r}")
        else:
            eval_counts[kind] += 1
        if not isinstance(text, str) or not text.strip():
            errors.append(f"eval[{i}]: empty query")
            continue
        key = norm(text)
        if key in eval_queries:
            errors.append(f"eval[{i}]: duplicate query {text!r}")
        eval_queries.add(key)
        if key in seen:
            errors.append(f"eval[{i}]: query also appears in the {seen[key]} intents: {text!r}")
        has_ja = bool(JAPANESE_CHAR.search(text))
        if kind == "japanese" and (store != "manga_jp" or not has_ja):
            errors.append(f"eval[{i}]: japanese queries must be manga_jp and written in Japanese")
        if kind != "japanese" and has_ja:
            errors.append(f"eval[{i}]: {kind} query contains Japanese; use kind 'japanese'")
        if not isinstance(rel, list) or not rel or len(set(map(str, rel))) != len(rel):
            errors.append(f"eval[{i}]: relevant must be a non-empty list without repeats")
            continue
        labelled_series = set()
        for r in rel:
            typ, _, name = str(r).partition(":")
            if typ == "series":
                ok = (store, name) in series_in_store
                labelled_series.add(name)
            elif typ == "product":
                ok = name in by_id and by_id[name]["store_id"] == store
                if ok:
                    labelled_series.add(by_id[name]["series"])
            elif typ == "doc":
                ok = doc_store.get(name) in (store, "*")
            else:
                ok = False
            if not ok:
                errors.append(f"eval[{i}]: relevant key {r!r} does not exist in store {store}")
        if kind == "plot":
            words = key.split()
            grams = {" ".join(words[j:j + 5]) for j in range(len(words) - 4)}
            for name in labelled_series:
                for syn in syn_by_series.get(name, []):
                    padded = f" {syn} "
                    copied = sorted(g for g in grams if f" {g} " in padded)
                    if copied:
                        errors.append(f"eval[{i}]: plot query copies the synopsis of {name!r}: {copied[0]!r}")
                        break
    if len(data["eval"]) < MIN_EVAL or eval_counts["japanese"] < MIN_EVAL_JAPANESE:
        errors.append(f"eval: {len(data['eval'])} queries ({eval_counts['japanese']} japanese); "
                      f"need >= {MIN_EVAL} ({MIN_EVAL_JAPANESE} japanese)")
    for k, v in eval_counts.items():
        if v < MIN_EVAL_PER_KIND:
            errors.append(f"eval: kind {k} has {v} < {MIN_EVAL_PER_KIND}")

    if len(products) < MIN_PRODUCTS or len(series) < MIN_SERIES:
        errors.append(f"catalog too small: {len(products)} products / {len(series)} series")
    if len(docs) < MIN_DOCS:
        errors.append(f"only {len(docs)} documents")
    if len(orders) < MIN_ORDERS:
        errors.append(f"only {len(orders)} orders")

    # report
    per_store = {s: sum(1 for p in products if p.get("store_id") == s) for s in STORES}
    both = {p["series"] for p in products if p["store_id"] == "manga_jp"} & {p["series"] for p in products if p["store_id"] == "comics_us"}
    demo = {}
    for p in products:
        demo[p["demographic"]] = demo.get(p["demographic"], 0) + 1
    print(f"products: {len(products)} ({', '.join(f'{k}={v}' for k, v in per_store.items())}); "
          f"series: {len(series)} ({len(both)} in both stores); out of stock: {zero} ({zero / max(1, len(products)):.1%})")
    print("products by demographic: " + ", ".join(f"{k}={demo.get(k, 0)}" for k in DEMOGRAPHICS))
    print(f"documents: {len(docs)} (faq={sum(d['kind'] == 'faq' for d in docs)}, policy={sum(d['kind'] == 'policy' for d in docs)})")
    print(f"users: {len(users)}; orders: {len(orders)} (u-demo statuses: {sorted(demo_statuses)})")
    for split in ("train", "heldout"):
        c = counts[split]
        print(f"intents {split}: {sum(c.values())} ({', '.join(f'{k}={v}' for k, v in c.items())})")
    print(f"eval retrieval: {len(data['eval'])} ({', '.join(f'{k}={v}' for k, v in eval_counts.items())}; "
          f"{', '.join(f'{k}={v}' for k, v in eval_store_counts.items())})")
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for e in errors[:50]:
            print("  - " + e)
        return 1
    print("check: OK")
    return 0


def main(argv: list[str]) -> int:
    if "--check" not in argv:
        generate()
    return check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
