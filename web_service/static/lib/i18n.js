// Every string of the web app, in zh-CN and en, side by side: `key: ['中文', 'English']`.
// `t('key', {name})` fills `{name}` placeholders. One section per view; add new keys to
// the section of the view that uses them. A test checks that every key has both languages
// and that every `t('…')` used in the code exists here.
import { createStore } from './store.js';

export const LANGUAGES = ['zh-CN', 'en'];

const STRINGS = {
  // --- the app shell and navigation ---
  'app.name': ['记录', 'Jilu'],
  'app.tagline': ['智能记录助手', 'Your smart recording assistant'],
  'nav.label': ['主导航', 'Main navigation'],
  'nav.menu': ['菜单', 'Menu'],
  'nav.timeline': ['时间线', 'Timeline'],
  'nav.new': ['新记录', 'New record'],
  'nav.search': ['搜索', 'Search'],
  'nav.assistant': ['助手', 'Assistant'],
  'nav.memories': ['记忆', 'Memories'],
  'nav.digests': ['摘要', 'Digests'],
  'nav.trash': ['回收站', 'Trash'],
  'nav.settings': ['设置', 'Settings'],
  'nav.admin': ['用户管理', 'Users'],
  'nav.logout': ['退出登录', 'Log out'],
  'nav.skip': ['跳到正文', 'Skip to content'],
  'status.online': ['在线', 'Online'],
  'status.offline': ['离线：新记录会保存在本机，联网后自动同步', 'Offline: new records are kept on this device and synced when you are back online'],
  'status.pending': ['{count} 条待同步', '{count} waiting to sync'],
  'page.notFound': ['页面不存在', 'Page not found'],
  'page.backHome': ['回到时间线', 'Back to the timeline'],

  // --- shared components ---
  'common.loading': ['加载中…', 'Loading…'],
  'common.retry': ['重试', 'Retry'],
  'common.save': ['保存', 'Save'],
  'common.saving': ['保存中…', 'Saving…'],
  'common.cancel': ['取消', 'Cancel'],
  'common.delete': ['删除', 'Delete'],
  'common.edit': ['编辑', 'Edit'],
  'common.close': ['关闭', 'Close'],
  'common.copy': ['复制', 'Copy'],
  'common.copied': ['已复制', 'Copied'],
  'common.loadMore': ['加载更多', 'Load more'],
  'common.empty': ['这里还什么都没有', 'Nothing here yet'],
  'common.confirmDelete': ['确定删除吗？', 'Delete this?'],
  'common.yes': ['是', 'Yes'],
  'common.no': ['否', 'No'],
  'common.optional': ['可选', 'optional'],
  'kind.note': ['笔记', 'Note'],
  'kind.diary': ['日记', 'Diary'],
  'kind.todo': ['待办', 'To-do'],
  'kind.photo': ['照片', 'Photo'],
  'kind.screenshot': ['截图', 'Screenshot'],
  'kind.voice': ['语音', 'Voice'],
  'kind.link': ['链接', 'Link'],
  'ai.status.pending': ['AI 分析排队中', 'AI analysis queued'],
  'ai.status.running': ['AI 分析中', 'AI analysing'],
  'ai.status.done': ['AI 已分析', 'AI analysed'],
  'ai.status.failed': ['AI 分析失败', 'AI analysis failed'],
  'ai.status.skipped': ['不发送给 AI', 'Not sent to AI'],
  'date.today': ['今天', 'Today'],
  'date.yesterday': ['昨天', 'Yesterday'],

  // --- errors ---
  'error.network': ['无法连接服务器，请检查网络', 'Cannot reach the server; check your connection'],
  'error.unexpected': ['出了点问题，请重试', 'Something went wrong; please try again'],
  'error.status': ['请求失败（{status}）', 'The request failed ({status})'],
  'error.loadFailed': ['加载失败：{message}', 'Could not load: {message}'],
  'error.code.rate_limited': ['操作太频繁，请稍后再试', 'Too many requests; try again in a moment'],
  'error.code.service_unavailable': ['服务暂时不可用，请稍后再试', 'The service is unavailable; try again shortly'],
  'error.code.budget_exceeded': ['今天的 AI 用量已用完', 'Today\u2019s AI budget is used up'],
  'error.code.version_conflict': ['这条记录已在别处修改', 'This record was changed elsewhere'],
  'error.code.payload_too_large': ['文件太大', 'The file is too large'],
  'error.code.unsupported_media_type': ['不支持这种文件类型', 'This file type is not supported'],

  // --- login and registration ---

  // --- timeline ---

  // --- composer ---

  // --- record detail ---

  // --- search ---

  // --- assistant ---

  // --- memories ---

  // --- digests ---

  // --- settings ---

  // --- admin ---

  // --- trash ---

  // --- offline and sync ---
};

function initialLanguage() {
  for (const wanted of navigator.languages || [navigator.language]) {
    if (!wanted) continue;
    if (wanted.toLowerCase().startsWith('zh')) return 'zh-CN';
    if (wanted.toLowerCase().startsWith('en')) return 'en';
  }
  return 'zh-CN';
}

export const language = createStore(initialLanguage());

/** Switch the UI language (the signed-in user's setting wins once it is known). */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) return;
  document.documentElement.lang = lang;
  language.set(lang);
}
document.documentElement.lang = language.get();

/** The string for `key` in the current language, with `{name}` placeholders filled in.
 * An unknown key answers `fallback` (the key itself unless given). */
export function t(key, vars = {}, fallback) {
  const entry = STRINGS[key];
  if (!entry) return fallback === undefined ? key : fallback;
  let text = entry[language.get() === 'en' ? 1 : 0];
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** For tests: every key and its two strings. */
export const allStrings = () => STRINGS;
