// Every string the client shows, in Russian and English. `t(key, vars)` picks the
// current language; the choice is kept in localStorage.
import { writable, derived } from 'svelte/store';

const messages = {
  ru: {
    'app.title': 'Поиск по лицам',
    'nav.gallery': 'Галерея', 'nav.search': 'Поиск по образцу', 'nav.people': 'Люди', 'nav.imports': 'Импорт',
    'nav.export': 'Экспорт', 'nav.monitoring': 'Мониторинг', 'nav.signout': 'Выйти',
    'login.title': 'Вход', 'login.setup': 'Создайте первую учётную запись (администратор)',
    'login.username': 'Имя пользователя', 'login.password': 'Пароль', 'login.submit': 'Войти',
    'login.create': 'Создать и войти', 'login.failed': 'Неверное имя пользователя или пароль',
    'gallery.all': 'Все фото', 'gallery.noFaces': 'Без лиц', 'gallery.source': 'Источник', 'gallery.import': 'Импорт',
    'gallery.any': 'любой', 'gallery.count': 'Фото: {n}', 'gallery.empty': 'Здесь пока нет фотографий',
    'gallery.loading': 'Загрузка…', 'gallery.faces': 'лиц: {n}',
    'source.vk': 'ВКонтакте', 'source.yadisk': 'Яндекс.Диск', 'source.local': 'Папка', 'source.upload': 'Загрузка',
    'status.imported': 'ждёт анализа', 'status.analysed': 'проанализировано', 'status.no_faces': 'лиц нет',
    'status.rejected': 'отклонено',
    'photo.close': 'Закрыть', 'photo.delete': 'Удалить фото', 'photo.confirmDelete': 'Удалить это фото?',
    'photo.faces': 'Лица: {n}', 'photo.score': 'уверенность', 'photo.similarity': 'сходство',
    'photo.source': 'Источник', 'photo.size': 'Размер', 'photo.imported': 'Импортировано', 'photo.status': 'Состояние',
    'search.title': 'Поиск по образцу', 'search.drop': 'Перетащите сюда JPG, PNG или WEBP с лицом — или выберите файл',
    'search.choose': 'Выбрать файл', 'search.pick': 'На снимке несколько лиц — выберите нужное',
    'search.threshold': 'Порог сходства: {n} %', 'search.results': 'Найдено: {n}', 'search.none': 'Совпадений выше порога нет',
    'search.coords': 'координаты', 'search.unavailable': 'Поиск по образцу ещё не подключён на этом сервере: модуль поиска (индекс Milvus и функция поиска) пока в разработке.',
    'people.title': 'Люди', 'people.unavailable': 'Группировка лиц по людям ещё не подключена на этом сервере: кластеризация пока в разработке.',
    'imports.title': 'Импорт', 'imports.vk': 'ВКонтакте', 'imports.vkSignIn': 'Войти через VK ID',
    'imports.vkConnected': 'VK подключён', 'imports.vkOff': 'Вход через VK не настроен на сервере',
    'imports.vkLink': 'Ссылка на альбом или страницу VK', 'imports.yadisk': 'Яндекс.Диск',
    'imports.yadiskLink': 'Публичная ссылка на папку Яндекс.Диска или disk:/путь на своём диске', 'imports.local': 'Папка на сервере',
    'imports.yandexSignIn': 'Войти через Яндекс (свой Диск)', 'imports.yandexConnected': 'Яндекс.Диск подключён',
    'imports.localPath': 'Путь к папке', 'imports.start': 'Начать', 'imports.drop': 'Перетащите сюда фотографии или выберите файлы',
    'imports.choose': 'Выбрать файлы', 'imports.uploading': 'Загрузка {done} из {total}', 'imports.jobs': 'Задания импорта',
    'imports.none': 'Заданий пока нет', 'imports.counts': 'найдено {discovered}, сохранено {stored} (дубликатов {duplicates}), пропущено {skipped}, ошибок {failed}',
    'imports.uploaded': 'Загружено: {ok}, отклонено: {bad}',
    'job.running': 'идёт', 'job.completed': 'готово', 'job.failed': 'ошибка', 'job.cancelled': 'отменено',
    'export.title': 'Экспорт лиц', 'export.hint': 'Каждое лицо с метаданными: id лица и фото, рамка, уверенность, источник и ссылка на него, модель, дата обработки, человек.',
    'export.csv': 'Скачать CSV', 'export.json': 'Скачать JSON', 'export.filter': 'Текущий фильтр',
    'monitoring.title': 'Мониторинг', 'monitoring.photos': 'Фото в секунду', 'monitoring.faces': 'Лиц в секунду',
    'monitoring.imported': 'Импорт, фото в секунду', 'monitoring.lag': 'Отставание очереди (события)',
    'monitoring.stages': 'Время этапов, p50 (с)', 'monitoring.cpu': 'CPU (ядер)', 'monitoring.memory': 'Память (МБ)',
    'monitoring.gpu': 'GPU (%)', 'monitoring.noGpu': 'GPU на этой машине нет', 'monitoring.http': 'Запросы к API в секунду',
    'monitoring.totals': 'Фото: {photos}, ждут анализа: {waiting}, лиц: {faces}',
    'error.generic': 'Ошибка: {message}',
  },
  en: {
    'app.title': 'Face search',
    'nav.gallery': 'Gallery', 'nav.search': 'Search by example', 'nav.people': 'People', 'nav.imports': 'Imports',
    'nav.export': 'Export', 'nav.monitoring': 'Monitoring', 'nav.signout': 'Sign out',
    'login.title': 'Sign in', 'login.setup': 'Create the first account (administrator)',
    'login.username': 'User name', 'login.password': 'Password', 'login.submit': 'Sign in',
    'login.create': 'Create and sign in', 'login.failed': 'Wrong user name or password',
    'gallery.all': 'All photos', 'gallery.noFaces': 'No faces', 'gallery.source': 'Source', 'gallery.import': 'Import',
    'gallery.any': 'any', 'gallery.count': 'Photos: {n}', 'gallery.empty': 'No photos here yet',
    'gallery.loading': 'Loading…', 'gallery.faces': 'faces: {n}',
    'source.vk': 'VK', 'source.yadisk': 'Yandex.Disk', 'source.local': 'Folder', 'source.upload': 'Upload',
    'status.imported': 'waiting for analysis', 'status.analysed': 'analysed', 'status.no_faces': 'no faces',
    'status.rejected': 'rejected',
    'photo.close': 'Close', 'photo.delete': 'Delete photo', 'photo.confirmDelete': 'Delete this photo?',
    'photo.faces': 'Faces: {n}', 'photo.score': 'score', 'photo.similarity': 'similarity',
    'photo.source': 'Source', 'photo.size': 'Size', 'photo.imported': 'Imported', 'photo.status': 'Status',
    'search.title': 'Search by example', 'search.drop': 'Drop a JPG, PNG or WEBP with a face here, or choose a file',
    'search.choose': 'Choose a file', 'search.pick': 'There are several faces: pick one',
    'search.threshold': 'Similarity threshold: {n} %', 'search.results': 'Found: {n}', 'search.none': 'No match above the threshold',
    'search.coords': 'coordinates', 'search.unavailable': 'Search by example is not connected on this server yet: the search module (Milvus index and search function) is still being built.',
    'people.title': 'People', 'people.unavailable': 'Grouping faces into people is not connected on this server yet: clustering is still being built.',
    'imports.title': 'Imports', 'imports.vk': 'VK', 'imports.vkSignIn': 'Sign in with VK ID',
    'imports.vkConnected': 'VK connected', 'imports.vkOff': 'VK sign-in is not configured on this server',
    'imports.vkLink': 'Link to a VK album or page', 'imports.yadisk': 'Yandex.Disk',
    'imports.yadiskLink': 'Public Yandex.Disk folder link, or disk:/path on your own disk', 'imports.local': 'Folder on the server',
    'imports.yandexSignIn': 'Sign in with Yandex (your own Disk)', 'imports.yandexConnected': 'Yandex.Disk connected',
    'imports.localPath': 'Folder path', 'imports.start': 'Start', 'imports.drop': 'Drop photos here, or choose files',
    'imports.choose': 'Choose files', 'imports.uploading': 'Uploading {done} of {total}', 'imports.jobs': 'Import jobs',
    'imports.none': 'No jobs yet', 'imports.counts': '{discovered} found, {stored} stored ({duplicates} duplicates), {skipped} skipped, {failed} failed',
    'imports.uploaded': 'Uploaded: {ok}, refused: {bad}',
    'job.running': 'running', 'job.completed': 'done', 'job.failed': 'failed', 'job.cancelled': 'cancelled',
    'export.title': 'Export faces', 'export.hint': 'Every face with its metadata: face and photo id, box, score, source and its reference, model, processing date, person.',
    'export.csv': 'Download CSV', 'export.json': 'Download JSON', 'export.filter': 'Current filter',
    'monitoring.title': 'Monitoring', 'monitoring.photos': 'Photos per second', 'monitoring.faces': 'Faces per second',
    'monitoring.imported': 'Imported photos per second', 'monitoring.lag': 'Queue lag (events)',
    'monitoring.stages': 'Stage time, p50 (s)', 'monitoring.cpu': 'CPU (cores)', 'monitoring.memory': 'Memory (MB)',
    'monitoring.gpu': 'GPU (%)', 'monitoring.noGpu': 'No GPU on this machine', 'monitoring.http': 'API requests per second',
    'monitoring.totals': 'Photos: {photos}, waiting for analysis: {waiting}, faces: {faces}',
    'error.generic': 'Error: {message}',
  },
};

const saved = typeof localStorage !== 'undefined' ? localStorage.getItem('lang') : null;
export const lang = writable(saved === 'en' || saved === 'ru' ? saved : 'ru');
lang.subscribe((value) => {
  if (typeof localStorage !== 'undefined') localStorage.setItem('lang', value);
  if (typeof document !== 'undefined') document.documentElement.lang = value;
});

export const t = derived(lang, ($lang) => (key, vars = {}) => {
  const text = messages[$lang][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
});

export const languages = Object.keys(messages);
