// Words of the pages in Chinese and English; the reasons are the gRPC contract's (docs/verdicts.md).
"use strict";
const HCX_WORDS = {
  zh: {
    station_title: "健康码核验", traveller_title: "我的健康码",
    enrol_label: "设备注册码", enrol_button: "注册本设备", enrol_refused: "注册码无效、已使用或已过期",
    manual_label: "或粘贴健康码文本", manual_button: "核验", sign_out: "退出",
    next: "下一位", scans: "已核验 {n} 人", camera_on: "请将健康码对准摄像头",
    camera_off: "无法打开摄像头：请粘贴健康码文本", checking: "核验中…",
    station_unreachable: "无法连接本站服务，正在重试", gateway_down: "国家网关不可达：离线核验",
    VALID: "通行", VALID_OFFLINE: "离线核验", INVALID: "无效",
    GREEN: "绿码 · 通行", YELLOW: "黄码 · 管控", RED: "红码 · 禁止通行",
    offline_age: "离线：颜色为 {age} 前签发时的颜色", holder: "持码人 {name} · 证件尾号 {tail}",
    minutes: "{n} 分钟", seconds: "{n} 秒", rate_limited: "核验过于频繁，请稍候",
    apply_title: "申领健康码", id_number: "身份证号", full_name: "姓名", residence: "居住地区划代码",
    fever: "发热", contact: "接触过确诊病例", symptoms: "症状", apply_button: "申领 / 登录",
    code_expires: "二维码 {s} 秒后自动刷新", quarantine: "隔离第 {day} 天，共 {days} 天（已打卡 {checked} 天，漏打卡 {missed} 天）",
    next_check_in: "下次健康打卡截止：{at}", check_in_title: "每日健康打卡", temperature: "体温 (°C)",
    check_in_button: "打卡", checked_in: "已打卡", history: "记录",
    cough: "咳嗽", sore_throat: "咽痛", fatigue: "乏力", loss_of_smell: "嗅觉减退",
    reasons: {
      BAD_ENCODING: "不是健康码（无法解码）", MALFORMED: "健康码格式错误", NON_CANONICAL: "健康码被改动过",
      UNSUPPORTED_ALGORITHM: "签名算法不被接受", UNKNOWN_KID: "签发密钥不在信任名单中",
      BAD_SIGNATURE: "签名无效：伪造或被篡改的健康码", CHAIN_INVALID: "签发证书不可信",
      ISSUER_MISMATCH: "签发省份与密钥不符", EXPIRED: "健康码已过期，请刷新", NOT_YET_VALID: "健康码时间在未来",
      KEY_REVOKED: "签发密钥已被吊销", PROVINCE_SUSPENDED: "签发省份已被暂停",
      KEY_NOT_VALID_AT_ISSUANCE: "签发时密钥无效", KEY_RETIRED: "签发密钥已停用",
      UNKNOWN_CODE: "签发省份不认识此码", TOKEN_TOO_OLD: "签发省份不可达，且此码太旧，请刷新",
      ISSUER_UNAVAILABLE: "签发省份不可达", UNKNOWN_PROVINCE: "未知省份", WRONG_PURPOSE: "证书用途不符",
      LIFETIME_TOO_LONG: "有效期过长", INVALID_REQUEST: "请求有误", INTERNAL_ERROR: "服务出错，请重试",
    },
  },
  en: {
    station_title: "Health code check", traveller_title: "My health code",
    enrol_label: "Device enrolment code", enrol_button: "Enrol this device", enrol_refused: "Unknown, used or expired code",
    manual_label: "Or paste the code's text", manual_button: "Verify", sign_out: "Sign out",
    next: "Next", scans: "{n} scanned", camera_on: "Hold the code up to the camera",
    camera_off: "No camera: paste the code's text", checking: "Checking…",
    station_unreachable: "Station unreachable, retrying", gateway_down: "National gateway unreachable: verifying offline",
    VALID: "VALID", VALID_OFFLINE: "VALID OFFLINE", INVALID: "INVALID",
    GREEN: "GREEN · GO", YELLOW: "YELLOW · MANAGED", RED: "RED · STOP",
    offline_age: "Offline: the colour at issuance, {age} ago", holder: "Holder {name} · ID ending {tail}",
    minutes: "{n} min", seconds: "{n} s", rate_limited: "Too many scans, wait a moment",
    apply_title: "Apply for a code", id_number: "ID number", full_name: "Name", residence: "District of residence (GB/T 2260)",
    fever: "Fever", contact: "Contact with a confirmed case", symptoms: "Symptoms", apply_button: "Apply / sign in",
    code_expires: "The QR refreshes in {s} s", quarantine: "Quarantine day {day} of {days} ({checked} checked in, {missed} missed)",
    next_check_in: "Next check-in due by {at}", check_in_title: "Daily health check-in", temperature: "Temperature (°C)",
    check_in_button: "Check in", checked_in: "Checked in", history: "History",
    cough: "Cough", sore_throat: "Sore throat", fatigue: "Fatigue", loss_of_smell: "Loss of smell",
    reasons: {
      BAD_ENCODING: "Not a health code (cannot be decoded)", MALFORMED: "Malformed code", NON_CANONICAL: "The code was altered",
      UNSUPPORTED_ALGORITHM: "Signature algorithm not accepted", UNKNOWN_KID: "Signing key not in the trust list",
      BAD_SIGNATURE: "Bad signature: a forged or altered code", CHAIN_INVALID: "Signing certificate not trusted",
      ISSUER_MISMATCH: "Issuing province does not match its key", EXPIRED: "Code expired: refresh it", NOT_YET_VALID: "Code dated in the future",
      KEY_REVOKED: "The signing key is revoked", PROVINCE_SUSPENDED: "The issuing province is suspended",
      KEY_NOT_VALID_AT_ISSUANCE: "Key not valid when the code was issued", KEY_RETIRED: "The signing key is retired",
      UNKNOWN_CODE: "The issuing province does not know this code", TOKEN_TOO_OLD: "Issuer unreachable and the code too old: refresh it",
      ISSUER_UNAVAILABLE: "The issuing province is unreachable", UNKNOWN_PROVINCE: "Unknown province", WRONG_PURPOSE: "Certificate not for health codes",
      LIFETIME_TOO_LONG: "Validity too long", INVALID_REQUEST: "Bad request", INTERNAL_ERROR: "Server error, try again",
    },
  },
};

const HCX = {
  lang: (localStorage.getItem("hcx-lang") || (navigator.language || "zh").slice(0, 2)) === "en" ? "en" : "zh",
  t(key, values) {
    let text = HCX_WORDS[HCX.lang][key] || HCX_WORDS.en[key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.replace("{" + k + "}", String(v));
    return text;
  },
  reason(code, fallback) { return HCX_WORDS[HCX.lang].reasons[code] || fallback || code; },
  apply() {
    document.documentElement.lang = HCX.lang === "en" ? "en" : "zh-CN";
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = HCX.t(el.dataset.t);
    const toggle = document.getElementById("lang");
    if (toggle) toggle.textContent = HCX.lang === "en" ? "中文" : "EN";
  },
  toggle() { HCX.lang = HCX.lang === "en" ? "zh" : "en"; localStorage.setItem("hcx-lang", HCX.lang); HCX.apply(); },
  csrf: "",
  async call(method, path, body, timeoutMs) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs || 4000);
    try {
      const response = await fetch(path, {
        method, signal: controller.signal, credentials: "same-origin", cache: "no-store",
        headers: body === undefined ? {} : { "Content-Type": "application/json", "X-CSRF-Token": HCX.csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const data = await response.json().catch(() => ({}));
      return { status: response.status, data };
    } finally { clearTimeout(timer); }
  },
  duration(seconds) {
    return seconds >= 120 ? HCX.t("minutes", { n: Math.round(seconds / 60) }) : HCX.t("seconds", { n: seconds });
  },
};
