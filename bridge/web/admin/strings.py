"""The words of /admin in German (the default) and English, chosen by the user's language."""

from __future__ import annotations

from typing import Any

DEFAULT_LANGUAGE = "de"

STRINGS: dict[str, dict[str, Any]] = {
    "de": {
        "lang": "de",
        "product": "calbridge – Verwaltung",
        "nav_calendars": "Kalender", "nav_users": "Benutzer", "nav_tokens": "Dienst-Tokens",
        "signed_in_as": "Angemeldet als", "logout": "Abmelden",
        "login_title": "Anmelden", "login": "Benutzername", "password": "Passwort", "sign_in": "Anmelden",
        "login_failed": "Benutzername oder Passwort ist falsch.",
        "login_throttled": "Zu viele fehlgeschlagene Anmeldungen. Bitte versuchen Sie es in {minutes} Minuten "
                           "erneut.",
        "calendars_title": "Kalender", "calendar": "Kalender", "owner": "Inhaber", "timezone": "Zeitzone",
        "caldav_url": "CalDAV-Adresse", "details": "Details", "delete": "Löschen", "create": "Anlegen",
        "create_calendar": "Kalender anlegen", "slug": "Kurzname (Teil der Adresse)", "display_name": "Anzeigename",
        "confirm_delete_calendar": "Diesen Kalender mit allen Terminen löschen?",
        "confirm_delete_user": "Diesen Benutzer mit seinen Kalendern und Terminen löschen?",
        "confirm_revoke": "Dieses Token widerrufen? Die Buchungssoftware verliert damit den Zugang.",
        "no_calendars": "Noch keine Kalender.", "copy_label": "Kopieren", "copied": "Kopiert",
        "subscribe_title": "Kalender abonnieren",
        "subscribe_intro": "Melden Sie sich mit Ihrem eigenen Benutzernamen und Passwort an; die Adresse ist:",
        "apple_macos": "Apple Kalender (macOS)",
        "apple_macos_steps": ["Kalender öffnen, Einstellungen › Accounts, „+“ wählen.",
                              "„Anderer CalDAV-Account“ wählen, Accounttyp „Manuell“.",
                              "Benutzername, Passwort und die Adresse oben als Serveradresse eintragen."],
        "apple_ios": "Apple Kalender (iPhone, iPad)",
        "apple_ios_steps": ["Einstellungen › Apps › Kalender › Kalender-Accounts › Account hinzufügen.",
                            "„Andere“ › „CalDAV-Account hinzufügen“ wählen.",
                            "Die Adresse oben als Server, dazu Benutzername und Passwort eintragen."],
        "thunderbird": "Thunderbird",
        "thunderbird_steps": ["Kalender › Neuer Kalender › „Im Netzwerk“.",
                              "Benutzername und die Adresse oben als Adresse eintragen, „Kalender suchen“.",
                              "Passwort eingeben und den Kalender abonnieren."],
        "davx5": "DAVx⁵ (Android)",
        "davx5_steps": ["„+“ › „Mit URL und Benutzername anmelden“.",
                        "Die Adresse oben als Basis-URL, dazu Benutzername und Passwort eintragen.",
                        "Konto anlegen und bei „CalDAV“ den Kalender zum Synchronisieren anhaken."],
        "users_title": "Benutzer", "email": "E-Mail", "role": "Rolle", "language": "Sprache",
        "role_admin": "Administrator", "role_member": "Mitarbeiter", "role_service": "Dienst",
        "language_de": "Deutsch", "language_en": "Englisch",
        "create_user": "Benutzer anlegen", "you": "Sie",
        "tokens_title": "Dienst-Tokens der Buchungssoftware", "token_name": "Bezeichnung", "scope": "Berechtigung",
        "created": "Angelegt", "state": "Status", "active": "aktiv", "revoked": "widerrufen", "revoke": "Widerrufen",
        "create_token": "Token ausstellen", "scope_engine": "Buchungen", "scope_admin": "Buchungen und Verwaltung",
        "no_tokens": "Noch keine Tokens.",
        "token_once": "Das neue Token. Kopieren Sie es jetzt: es wird nie wieder angezeigt.",
        "invalid": "Die Eingabe ist ungültig:",
        "error_title": "Fehler", "back": "Zurück zur Übersicht",
        "error_400": "Die Anfrage ist ungültig.",
        "error_403": "Dafür fehlt die Berechtigung, oder das Formular ist abgelaufen. Bitte laden Sie die Seite neu.",
        "error_404": "Diese Seite gibt es nicht.",
        "error_405": "Diese Aktion ist hier nicht möglich.",
        "error_413": "Die Eingabe ist zu groß.",
        "error_415": "Das Formular hat ein unbekanntes Format.",
        "error_429": "Zu viele Versuche. Bitte warten Sie einen Moment.",
    },
    "en": {
        "lang": "en",
        "product": "calbridge – Administration",
        "nav_calendars": "Calendars", "nav_users": "Users", "nav_tokens": "Service tokens",
        "signed_in_as": "Signed in as", "logout": "Sign out",
        "login_title": "Sign in", "login": "User name", "password": "Password", "sign_in": "Sign in",
        "login_failed": "The user name or password is wrong.",
        "login_throttled": "Too many failed sign-ins. Please try again in {minutes} minutes.",
        "calendars_title": "Calendars", "calendar": "Calendar", "owner": "Owner", "timezone": "Time zone",
        "caldav_url": "CalDAV address", "details": "Details", "delete": "Delete", "create": "Create",
        "create_calendar": "Create a calendar", "slug": "Short name (part of the address)",
        "confirm_delete_calendar": "Delete this calendar with all its events?",
        "confirm_delete_user": "Delete this user with their calendars and events?",
        "confirm_revoke": "Revoke this token? The booking software loses its access.",
        "display_name": "Display name", "no_calendars": "No calendars yet.", "copy_label": "Copy", "copied": "Copied",
        "subscribe_title": "Subscribe to the calendar",
        "subscribe_intro": "Sign in with your own user name and password; the address is:",
        "apple_macos": "Apple Calendar (macOS)",
        "apple_macos_steps": ["Open Calendar, Settings › Accounts, choose “+”.",
                              "Choose “Other CalDAV Account”, account type “Manual”.",
                              "Enter user name, password and the address above as the server address."],
        "apple_ios": "Apple Calendar (iPhone, iPad)",
        "apple_ios_steps": ["Settings › Apps › Calendar › Calendar Accounts › Add Account.",
                            "Choose “Other” › “Add CalDAV Account”.",
                            "Enter the address above as the server, with user name and password."],
        "thunderbird": "Thunderbird",
        "thunderbird_steps": ["Calendar › New Calendar › “On the Network”.",
                              "Enter your user name and the address above as the location, “Find Calendars”.",
                              "Enter the password and subscribe to the calendar."],
        "davx5": "DAVx⁵ (Android)",
        "davx5_steps": ["“+” › “Login with URL and user name”.",
                        "Enter the address above as the base URL, with user name and password.",
                        "Create the account and tick the calendar under “CalDAV” to synchronise it."],
        "users_title": "Users", "email": "E-mail", "role": "Role", "language": "Language",
        "role_admin": "Administrator", "role_member": "Employee", "role_service": "Service",
        "language_de": "German", "language_en": "English",
        "create_user": "Create a user", "you": "you",
        "tokens_title": "Service tokens of the booking software", "token_name": "Name", "scope": "Scope",
        "created": "Created", "state": "State", "active": "active", "revoked": "revoked", "revoke": "Revoke",
        "create_token": "Issue a token", "scope_engine": "Bookings", "scope_admin": "Bookings and provisioning",
        "no_tokens": "No tokens yet.",
        "token_once": "The new token. Copy it now: it is never shown again.",
        "invalid": "The input is not valid:",
        "error_title": "Error", "back": "Back to the overview",
        "error_400": "The request is not valid.",
        "error_403": "You may not do this, or the form has expired. Please reload the page.",
        "error_404": "There is no such page.",
        "error_405": "This action is not possible here.",
        "error_413": "The input is too large.",
        "error_415": "The form has an unknown format.",
        "error_429": "Too many attempts. Please wait a moment.",
    },
}


def strings_for(language: str) -> dict[str, Any]:
    return STRINGS.get(language, STRINGS[DEFAULT_LANGUAGE])


def browser_language(accept_language: str) -> str:
    """Before sign-in: English if the browser prefers it to German, else German."""
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in STRINGS:
            return tag
    return DEFAULT_LANGUAGE

