from __future__ import annotations

import gettext
from functools import cache
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from core.i18n import DOMAIN, LANGUAGES, LOCALES_DIR, N_


@cache
def translations(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALES_DIR, languages=[language], fallback=True)


def render_page(request: web.Request, template: str, context: dict[str, Any]) -> web.Response:
    """A page in the request's language; templates translate with ``_()``. A language picked
    with ``?lang=`` is remembered in a cookie."""
    language = request_language(request)
    page = {"lang": language, "_": translations(language).gettext, **context}
    response = aiohttp_jinja2.render_template(template, request, page)
    if request.query.get("lang") == language:
        response.set_cookie("lang", language, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


def request_language(request: web.Request) -> str:
    """The language asked for by ?lang=, the `lang` cookie, or the browser."""
    asked = request.query.get("lang") or request.cookies.get("lang")
    if asked in LANGUAGES:
        return asked
    header = request.headers.get("Accept-Language", "")
    for part in header.split(","):
        code = part.split(";")[0].strip().split("-")[0].lower()
        if code in LANGUAGES:
            return code
    return "en"


# The app's texts for its scripts, by key; the page renders them in its language as JSON.
APP_TEXTS: dict[str, str] = {
    # frame and navigation
    "chat": N_("Chat"),
    "chats": N_("Chats"),
    "presets": N_("Presets"),
    "gallery": N_("Gallery"),
    "balance": N_("Balance"),
    "more": N_("More"),
    "referrals": N_("Invite friends"),
    "referrals_hint": N_("Your link, friends and earnings"),
    "settings": N_("Settings"),
    "settings_hint": N_("Language, theme, chat features"),
    "privacy": N_("Privacy"),
    "privacy_hint": N_("Your data, shared links, deleting the account"),
    "hello": N_("Hello, {name}!"),
    "hello_anon": N_("Hello!"),
    "signing_in": N_("Signing in…"),
    "loading": N_("Loading…"),
    "failed": N_("Something went wrong. Please try again later."),
    "retry": N_("Try again"),
    "session_ended": N_("Your session has ended. Please sign in again."),
    "session_ended_telegram": N_(
        "This sign-in has expired. Please open the app again from the bot."
    ),
    "signed_out": N_("You have signed out."),
    "account_deleted": N_("Your account has been deleted. Thank you for using NetRoom."),
    "account_linked": N_("The sign-in method is linked to your account."),
    # why a Google or Yandex sign-in came back unfinished, by error code
    "auth_error_oauth_rejected": N_("Signing in was not completed. Please start again."),
    "auth_error_oauth_unavailable": N_(
        "Signing in with this provider is not possible right now. Please try again later."
    ),
    "auth_error_oauth_state_invalid": N_(
        "This sign-in link is invalid or has already been used. Please start again."
    ),
    "auth_error_identity_taken": N_(
        "This sign-in method already belongs to another NetRoom account."
    ),
    "auth_error_consent_required": N_("Please accept the privacy policy first."),
    "accept_continue_google": N_("Accept and continue with Google"),
    "accept_continue_yandex": N_("Accept and continue with Yandex"),
    "sign_in_to_copy": N_("Sign in to copy the shared preset to your presets."),
    # common actions
    "cancel": N_("Cancel"),
    "save": N_("Save"),
    "saved": N_("Saved."),
    "delete": N_("Delete"),
    "edit": N_("Edit"),
    "share": N_("Share"),
    "copy": N_("Copy"),
    "copied": N_("Copied."),
    "copy_code": N_("Copy the code"),
    "copy_failed": N_("Could not copy. Select the text and copy it by hand."),
    "open": N_("Open"),
    "done": N_("Done"),
    "add": N_("Add"),
    "download": N_("Download"),
    "load_more": N_("Show more"),
    "use": N_("Use"),
    "in_use": N_("In use"),
    "active": N_("Active"),
    "free": N_("free"),
    # chat
    "new_chat": N_("New chat"),
    "no_chats": N_("No chats yet. Start one and it appears here."),
    "untitled": N_("Untitled chat"),
    "model": N_("Model"),
    "model_changed": N_("Model: {model}"),
    "chat_model_changed": N_("This chat now answers with {model}."),
    "search_chats": N_("Search chats"),
    "search_nothing": N_("Nothing found for “{query}”."),
    "chat_options": N_("Name and instructions"),
    "chat_preset": N_("Instructions (preset)"),
    "no_preset": N_("No preset"),
    "chat_name": N_("Chat name"),
    "chat_renamed": N_("Chat renamed."),
    "cap_vision": N_("sees pictures"),
    "cap_reasoning": N_("reasons"),
    "cap_web_search": N_("web search"),
    "typical_price": N_("≈{amount} a typical request"),
    "free_class": N_("free: {tier}"),
    "free_classes": N_("Free classes"),
    "all_models": N_("All models: what they can do and cost"),
    "typical_request_note": N_(
        "Prices are for a typical request: about 500 tokens in and 500 out."
    ),
    "free_classes_note": N_(
        "Requests to models of a free class are free up to the allowance, then at the price "
        "shown. Prices are for a typical request: about 500 tokens in and 500 out."
    ),
    "composer_placeholder": N_("Message NetRoom…"),
    "composer_note": N_("Chats are kept for 14 days. You pay only for what is written."),
    "send": N_("Send"),
    "stop": N_("Stop"),
    "attach_document": N_("Attach a document"),
    "record_voice": N_("Dictate a message"),
    "stop_recording": N_("Stop recording"),
    "transcribing": N_("Transcribing…"),
    "recording_too_large": N_("This recording is too large. Please keep it under {limit} MB."),
    "no_words_heard": N_("No words were heard in this recording."),
    "microphone_denied": N_("The microphone is blocked. Allow it in the browser to dictate."),
    "microphone_unavailable": N_("No microphone could be opened on this device."),
    "detach_document": N_("Remove from this chat"),
    "document_uploading": N_("Uploading…"),
    "document_reading": N_("Reading the document…"),
    "document_failed": N_("This document could not be read."),
    "document_pages": N_("{count} pages"),
    "document_wait": N_("Reading {name}: you can send your question when it is ready."),
    "document_ready": N_("{name} is ready: ask about it."),
    "document_too_large": N_("{name} is too large: the limit is {limit} MB."),
    "document_detached": N_("{name} no longer answers in this chat."),
    "reasoning": N_("Reasoning"),
    "sources": N_("Sources: {sources}"),
    "sources_more": N_("{first} and {count} more"),
    "pin": N_("Pin"),
    "unpin": N_("Unpin"),
    "pinned_done": N_("Pinned."),
    "unpinned_done": N_("Unpinned."),
    "pinned_count": N_("Pinned: {count}"),
    "show_all_messages": N_("Show all messages"),
    "no_pinned": N_("No pinned messages."),
    "status_stopped": N_("Stopped"),
    "status_failed": N_("Not finished"),
    "status_cut": N_("Cut short: the service restarted"),
    "status_undelivered": N_("Not delivered"),
    "free_request": N_("Free request"),
    "replaced": N_("Replaced"),
    "regenerate": N_("Regenerate"),
    "regenerate_with": N_("Regenerate with another model"),
    "edit_prompt": N_("Edit and ask again"),
    "rate_good": N_("Good answer"),
    "rate_bad": N_("Bad answer"),
    "rating_thanks": N_("Thank you for the feedback."),
    "rating_removed": N_("Rating removed."),
    "reply_cost": N_("What this reply cost"),
    "cost_of_reply": N_("This reply cost {amount} ({model})."),
    "cost_free": N_("This reply was free ({model})."),
    "cost_unknown": N_("The cost of this reply is not known."),
    "intro_title": N_("What can I help with?"),
    "intro_text": N_(
        "Ask anything. Replies stream in live, and you can switch models at any time."
    ),
    "preset_in_use": N_("Preset: {title}"),
    "suggest_explain": N_("Explain quantum computing in simple words"),
    "suggest_email": N_("Write a polite email asking to move a meeting"),
    "suggest_plan": N_("Plan a three-day trip to Kazan"),
    "no_models": N_("No models are set up on this server yet."),
    "chat_not_found": N_("This chat does not exist any more."),
    "delete_chat_title": N_("Delete this chat?"),
    "delete_chat_text": N_("The chat and its messages are deleted for good."),
    "chat_deleted": N_("Chat deleted."),
    "top_up": N_("Top up"),
    # sharing
    "share_ready": N_("Link ready"),
    "share_hint": N_("Anyone with this link can read it, without signing in."),
    "share_revoke_hint": N_("You can revoke the link at any time under Privacy."),
    # presets
    "presets_lead": N_(
        "A preset is a set of instructions for the model. The one in use applies to new chats."
    ),
    "new_preset": N_("New preset"),
    "edit_preset": N_("Edit preset"),
    "preset": N_("Preset"),
    "preset_title": N_("Title"),
    "preset_title_placeholder": N_("For example: English teacher"),
    "preset_prompt": N_("Instructions for the model"),
    "preset_prompt_placeholder": N_(
        "For example: You are a patient English teacher. Correct my mistakes and explain them."
    ),
    "preset_prompt_hint": N_("Up to 4,000 characters. The model follows them in every reply."),
    "preset_created": N_("Preset created."),
    "preset_saved": N_("Preset saved."),
    "preset_deleted": N_("Preset deleted."),
    "preset_used": N_("«{title}» will be used in new chats."),
    "preset_stopped": N_("New chats start without a preset."),
    "preset_copied": N_("«{title}» is now in your presets."),
    "preset_not_found": N_("This preset no longer exists."),
    "no_presets": N_("No presets yet"),
    "no_presets_text": N_("Save instructions you give the model often and use them in a tap."),
    "delete_preset_title": N_("Delete «{title}»?"),
    "delete_preset_text": N_("Links you shared to it stop working."),
    "add_from_link": N_("Add from a shared link"),
    "add_from_link_hint": N_("Someone shared a preset with you? Paste the link to get a copy."),
    "shared_link_placeholder": N_("Paste the link here"),
    "not_a_share_link": N_("This is not a NetRoom share link."),
    # gallery
    "no_media": N_("No pictures or videos yet"),
    "no_media_text": N_("Pictures and videos you make with NetRoom appear here."),
    "open_chat": N_("Open the chat"),
    "media_pending": N_("Being made…"),
    "media_failed": N_("Could not be made"),
    "delete_media_title": N_("Delete this picture or video?"),
    "delete_media_text": N_("Its link stops working. This cannot be undone."),
    "media_deleted": N_("Deleted."),
    "no_media_create": N_("Describe a picture or a video above and press Create."),
    "create_title": N_("Create"),
    "create_hint": N_("A picture or a video from a few words"),
    "create_picture": N_("Picture"),
    "create_video": N_("Video"),
    "create_prompt": N_("What to draw"),
    "create_placeholder": N_("A lighthouse on a cliff at dawn, watercolour"),
    "create_shape": N_("Shape"),
    "create_count": N_("Variations"),
    "create_price": N_("Price: {price}"),
    "create_discount": N_("−{percent}% with your plan"),
    "create_video_length": N_("{seconds} s long"),
    "create_button": N_("Create"),
    "create_one_picture": N_("Create a picture"),
    "create_pictures": N_("Create {count} pictures"),
    "create_one_video": N_("Create a video"),
    "create_describe": N_("Describe what to make first."),
    "pictures_made": N_("Ready: {count} · charged {charged}"),
    "pictures_partly": N_(
        "Ready: {made}. {failed} could not be made and cost nothing · charged {charged}"
    ),
    "video_started": N_(
        "The video is being made. It appears here when ready; you can leave this page."
    ),
    "video_ready": N_("Your video is ready."),
    "more_like_this": N_("More like this · {price}"),
    "not_enough_money": N_("Not enough money"),
    "open_gallery": N_("Open in the gallery"),
    "aspect_1_1": N_("Square"),
    "aspect_3_2": N_("Landscape 3:2"),
    "aspect_2_3": N_("Portrait 2:3"),
    "aspect_16_9": N_("Wide 16:9"),
    "aspect_9_16": N_("Tall 9:16"),
    # image mode (settings and the chat)
    "image_mode": N_("Image mode"),
    "image_mode_hint": N_(
        "Your messages draw pictures instead of getting answers, here and in the bot. "
        "Each picture is paid."
    ),
    "image_mode_on_done": N_("Image mode is on: messages draw pictures."),
    "image_mode_off_done": N_("Image mode is off: messages get answers again."),
    "image_mode_on": N_("Image mode: each message becomes a picture"),
    "image_mode_on_price": N_("Image mode: each message becomes a picture ({price})"),
    "image_mode_turn_off": N_("Turn off"),
    "composer_image_placeholder": N_("Describe a picture…"),
    "drawing_picture": N_("Drawing the picture…"),
    # time zone (settings)
    "time_zone": N_("Time zone"),
    "time_zone_label": N_("Times are shown in"),
    "time_zone_hint": N_("Here and in the bot. This device's zone: {zone}."),
    # balance
    "held": N_("Held for requests in progress: {amount}"),
    "bonus_next": N_("🎁 Your next top-up gets a {percent}% bonus."),
    "discount": N_("discount on paid requests: {percent}%"),
    "free_requests": N_("Free requests"),
    "free_left": N_("{left} of {limit} left"),
    "free_period_day": N_("Renewed every day."),
    "free_period_week": N_("Renewed every week."),
    "free_period_month": N_("Renewed every month."),
    "free_renew": N_("Free requests renew: {when}"),
    "your_plan": N_("Your plan"),
    "plans": N_("Subscription plans"),
    "plan_free_day": N_("{count} free {tier} requests a day"),
    "plan_free_week": N_("{count} free {tier} requests a week"),
    "plan_free_month": N_("{count} free {tier} requests a month"),
    "tier_basic": N_("basic"),
    "tier_standard": N_("standard"),
    "tier_hint_basic": N_("light, fast models"),
    "tier_hint_standard": N_("stronger models"),
    "tier_classes": N_("Classes: {classes}."),
    "plan_until": N_("Active until {date}"),
    "plan_renews_on": N_("Renews on {date}"),
    "renews": N_("Renews"),
    "renewal_off": N_("Renewal off"),
    "stars_per_month": N_("{stars} every 30 days"),
    "plans_in_bot": N_("Subscribe in the bot with /subscribe."),
    "pay_with_stars": N_("Telegram Stars"),
    "pay_by_card": N_("Bank card"),
    "by_card": N_("by card"),
    "stars_in_telegram": N_("Top-ups with Telegram Stars are in the Telegram app."),
    "topup_unavailable": N_("Top-ups are not available here yet."),
    "payment_received": N_("Payment received. Thank you!"),
    "stars_pay_in_telegram": N_(
        "The invoice opened in Telegram in a new tab: your balance is topped up once it is paid."
    ),
    "payment_failed": N_("The payment did not go through."),
    "transactions": N_("Transaction history"),
    "no_transactions": N_("No transactions yet."),
    "cat_text": N_("text model"),
    "cat_image": N_("image"),
    "cat_video": N_("video"),
    "cat_topup": N_("top-up"),
    "cat_referral": N_("referral earning"),
    "cat_bonus": N_("bonus"),
    "cat_subscription": N_("subscription"),
    "cat_other": N_("other"),
    "tx_plan_paid": N_("paid in Stars for plan {plan}"),
    "tx_plan_charge": N_("plan {plan}, 30 days"),
    # referrals
    "invite_friends": N_("Invite friends"),
    "referral_how": N_(
        "Your share of your friends' top-ups: {level1}%; of their friends' top-ups: {level2}%."
    ),
    "referral_how_plain": N_("Share your link: friends who join through it are counted here."),
    "invite_message": N_("Chat with every leading AI model in NetRoom"),
    "share_link": N_("Share the link"),
    "bot_link": N_("Link to the bot"),
    "app_link": N_("Link to the app in Telegram"),
    "your_code": N_("Your code"),
    "your_links": N_("Your links"),
    "code_is": N_("Your code: {code}"),
    "friends_invited": N_("Friends invited"),
    "their_friends": N_("Their friends"),
    "earned": N_("Earned"),
    # settings
    "interface_language": N_("Interface language"),
    "appearance": N_("Appearance"),
    "theme_auto": N_("Auto"),
    "theme_light": N_("Light"),
    "theme_dark": N_("Dark"),
    "theme_hint": N_("Auto follows your device."),
    "theme_hint_telegram": N_("Auto follows Telegram's colours."),
    "chat_settings": N_("Chat settings"),
    "show_reasoning": N_("Show reasoning"),
    "show_reasoning_hint": N_("Models that think before answering show their reasoning."),
    "web_search": N_("Web search"),
    "web_search_hint": N_("Models that can search the web use it for fresh facts."),
    "read_aloud": N_("Read replies aloud"),
    "read_aloud_hint": N_(
        "In the bot, replies also come as voice messages. Reading aloud is paid by length."
    ),
    "privacy_settings": N_("History and messages"),
    "keep_history": N_("Keep chat history (14 days)"),
    "keep_history_hint": N_("Models remember the conversation, and you can come back to it."),
    "history_off_title": N_("Turn history off?"),
    "history_off_text": N_(
        "Your stored chats are deleted now, and new messages are not kept. This cannot be undone."
    ),
    "history_off_confirm": N_("Turn off and delete"),
    "history_off_done": N_(
        "History is off: prompts and replies are not kept, and what was kept is gone."
    ),
    "history_on_done": N_("History is kept for 14 days."),
    "news": N_("News and offers"),
    "news_hint": N_(
        "Occasional messages about new models and offers. Service messages always come."
    ),
    "account": N_("Account"),
    "sign_out": N_("Sign out"),
    "sign_out_everywhere": N_("Sign out on all devices"),
    # privacy
    "your_data": N_("Your data"),
    "export_text": N_(
        "Download everything NetRoom holds about you: account, chats, payments, files. "
        "Each format once an hour."
    ),
    "export_json": N_("JSON file"),
    "export_zip": N_("CSV tables (ZIP)"),
    "export_html": N_("Chats as a web page (HTML)"),
    "export_ready": N_("The download has started."),
    "shared_links": N_("Shared links"),
    "shared_links_text": N_("Chats and presets you shared. A revoked link stops working at once."),
    "no_shares": N_("You have not shared anything."),
    "share_active": N_("Active"),
    "share_revoked": N_("Revoked"),
    "share_disabled": N_("Disabled by NetRoom"),
    "views": N_("views: {count}"),
    "revoke": N_("Revoke"),
    "revoke_title": N_("Revoke this link?"),
    "revoke_text": N_("Whoever has it will no longer be able to open it."),
    "revoked": N_("Link revoked."),
    "privacy_policy": N_("Privacy policy"),
    "policy_hint": N_("What we keep, why, and for how long"),
    "delete_account": N_("Delete your account"),
    "delete_account_lead": N_(
        "Your chats, presets, files and balance are deleted for good. Payment records stay "
        "only as long as the law requires, with nothing that leads back to you."
    ),
    "delete_account_title": N_("Delete your account for good?"),
    "delete_account_text": N_(
        "Everything is deleted at once, including any money left on the balance. "
        "This cannot be undone."
    ),
    "delete_account_confirm": N_("Delete my account"),
    # signing in from a browser
    "accept_policy_first": N_("Please accept the privacy policy first."),
    "check_mail": N_("We sent a link to {email}. Open it to finish creating your account."),
    "mail_resent": N_("We sent the link again."),
    "email_confirmed": N_("Your email is confirmed. Sign in to continue."),
    "enter_email_first": N_("Enter your email first."),
    "sign_in_link_sent": N_(
        "If {email} belongs to a confirmed account, a sign-in link is on its way. "
        "It works once, within 15 minutes."
    ),
    # subscriptions on the balance page
    "plan_subscribe": N_("Subscribe"),
    "plan_cancel_renewal": N_("Cancel renewal"),
    "plan_resume_renewal": N_("Resume renewal"),
    "plan_cancel_title": N_("Cancel the renewal?"),
    "plan_cancel_text": N_(
        "The plan stays active until {date}. After that it is not renewed and no more Stars "
        "are charged."
    ),
    "plan_keep_renewal": N_("Keep it"),
    "plan_renewal_cancelled": N_("Renewal cancelled. The plan stays active until {until}."),
    "plan_renewal_resumed": N_("Renewal is on again. The plan renews on {until}."),
    "plan_pay_in_telegram": N_(
        "The invoice opened in Telegram in a new tab: the payment is completed there. Your plan "
        "shows here once it is paid."
    ),
    "plan_open_invoice": N_("Open the invoice"),
    "plan_check_payment": N_("I have paid"),
    "plan_not_yet": N_("No payment yet. It can take a minute after paying in Telegram."),
    "plan_manage_in_bot": N_("You can cancel renewal at any time in the bot with /subscribe."),
    # sign-in and security page
    "security": N_("Sign-in and security"),
    "security_hint": N_("Sign-in methods, password, devices"),
    "sign_in_methods": N_("Sign-in methods"),
    "sign_in_methods_lead": N_("Any of these signs you in to this account."),
    "method_email": N_("Email and password"),
    "method_email_only": N_("Email"),
    "method_google": N_("Google"),
    "method_yandex": N_("Yandex"),
    "method_telegram": N_("Telegram"),
    "method_telegram_hint": N_("Open NetRoom from the bot to sign in."),
    "method_linked": N_("Linked"),
    "method_not_linked": N_("Not linked"),
    "link_method": N_("Link"),
    "add_method": N_("Add"),
    "add_email_title": N_("Add email and password"),
    "add_email_lead": N_(
        "Sign in on the website with this address and password too. We will email you a link "
        "to confirm the address; the password works once it is confirmed."
    ),
    "email_address": N_("Email address"),
    "password_field": N_("Password"),
    "repeat_password_field": N_("Repeat the password"),
    "enter_email": N_("Please enter a valid email address."),
    "add_email_submit": N_("Send the confirmation link"),
    "add_email_sent": N_(
        "We sent a link to {email}. Open it to confirm the address, then sign in on the website "
        "with it."
    ),
    "link_in_browser": N_(
        "Finish in the browser that opened, then come back here: the account shows as linked."
    ),
    "link_telegram": N_("Link Telegram"),
    "link_telegram_lead": N_(
        "Open this link in Telegram and confirm in the bot. It works once, within {minutes} "
        "minutes. Then your balance, history and plans are the same here and in the bot."
    ),
    "link_telegram_open": N_("Open in Telegram"),
    "link_telegram_done": N_("I have confirmed"),
    "link_telegram_waiting": N_("Not linked yet. Confirm in the bot, then try again."),
    "link_merged_here": N_(
        "Telegram is linked. Your chats, presets, files and pictures from the bot are here now."
    ),
    "link_merged_away": N_(
        "Telegram is linked: this account joined your Telegram account, which is your one "
        "account now. Sign in again the same way to continue there."
    ),
    "link_merged_away_history": N_(
        "Telegram is linked: your chats, presets, files and pictures from here moved to your "
        "Telegram account, which is your one account now. Sign in again the same way to find "
        "them there."
    ),
    "change_password": N_("Change password"),
    "change_password_lead": N_(
        "You stay signed in on this device; every other device is signed out."
    ),
    "current_password": N_("Current password"),
    "new_password": N_("New password"),
    "repeat_password": N_("Repeat the new password"),
    "password_rules": N_(
        "At least 8 characters. A short phrase is easy to remember and hard to guess."
    ),
    "enter_current_password": N_("Enter your current password."),
    "password_length": N_(
        "The password must be 8 to 128 characters long and not only spaces. "
        "A longer phrase is safer."
    ),
    "passwords_differ": N_("The new passwords do not match."),
    "password_changed": N_("Password changed."),
    "password_changed_others": N_("Password changed. Your other devices were signed out."),
    "sessions": N_("Active sessions"),
    "sessions_lead": N_(
        "Where your account is signed in now. End any session you do not recognise."
    ),
    "this_device": N_("This device"),
    "active_now": N_("Active now"),
    "last_active": N_("Last active {when}"),
    "device_on_os": N_("{browser} on {os}"),
    "web_browser": N_("Web browser"),
    "end_session": N_("End"),
    "end_session_title": N_("End this session?"),
    "end_session_text": N_("{device} is signed out at once and has to sign in again."),
    "end_session_confirm": N_("End session"),
    "session_ended_done": N_("Session ended."),
    "sign_out_everywhere_title": N_("Sign out on all devices?"),
    "sign_out_everywhere_text": N_(
        "Every session ends, this one too. You will need to sign in again on each device."
    ),
}


def app_texts(language: str) -> dict[str, str]:
    """The app's texts in ``language``."""
    gettext = translations(language).gettext
    return {key: gettext(msgid) for key, msgid in APP_TEXTS.items()}
