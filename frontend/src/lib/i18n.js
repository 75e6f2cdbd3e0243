// Every string the client shows, in Russian and English. `t(key, vars)` picks the
// current language; the choice is kept in localStorage.
import { writable, derived } from 'svelte/store';
import { catalog } from './catalog.js';
import { peopleMessages } from './i18n_people.js';

export const messages = {
  ru: {
    'app.title': 'Поиск по лицам',
    'nav.gallery': 'Галерея', 'nav.search': 'Поиск по образцу', 'nav.people': 'Люди', 'nav.imports': 'Импорт',
    'nav.export': 'Экспорт', 'nav.monitoring': 'Мониторинг', 'nav.signout': 'Выйти',
    'login.title': 'Вход', 'login.setupTitle': 'Первая учётная запись', 'login.setup': 'Создайте первую учётную запись (администратор)',
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
    'search.title': 'Поиск по образцу', 'search.drop': 'Перетащите сюда {formats} с лицом — или выберите файл',
    'search.choose': 'Выбрать файл', 'search.pick': 'На снимке несколько лиц — выберите нужное',
    'search.threshold': 'Порог сходства: {n} %', 'search.results': 'Найдено: {n}', 'search.none': 'Совпадений выше порога нет',
    'search.coords': 'координаты', 'search.same': 'тот же человек', 'search.different': 'другой человек',
    'search.notEmbedded': 'ещё не обработано этой моделью', 'search.person': 'Человек: {name}',
    'search.archive': 'лиц в архиве: {n}', 'search.allModels': 'Только совпадения, которые подтверждает перекрёстная проверка моделей ({models})', 'search.crossCheck': 'обе модели',
    'search.meaning': '70 % — находит почти всё, иногда с чужими лицами; 85 % — чистый ответ (чужое лицо примерно в одном поиске из десяти); 95 % — почти наверняка тот же человек.', 'search.unavailable': 'Поиск по образцу ещё не подключён на этом сервере: модуль поиска (индекс Milvus и функция поиска) пока в разработке.',
    'people.title': 'Люди', 'people.cluster': 'Найти людей', 'people.clustering': 'Группировка…',
    'people.hint': 'Лица с проанализированных фото группируются по людям. Ваши исправления (имена, объединения, переносы, «не он») сохраняются, когда группировка запускается снова.',
    'people.run': 'Лиц: {faces}, людей: {people}, ни к кому не отнесено: {unassigned}',
    'people.empty': 'Людей пока нет: нажмите «Найти людей», когда фото будут проанализированы',
    'people.unnamed': 'Без имени', 'people.faces': 'лиц: {n}', 'people.edited': 'исправлено', 'people.name': 'Имя',
    'people.save': 'Сохранить', 'people.mergeWith': 'Объединить с', 'people.merge': 'Объединить', 'people.choose': '— выберите —',
    'people.confirmMerge': 'Объединить «{other}» с «{name}»? Все лица «{other}» перейдут сюда.',
    'people.split': 'Выделить отмеченные в нового человека ({n})', 'people.select': 'отметить',
    'people.moveTo': 'Перенести в…', 'people.newPerson': 'нового человека', 'people.notThis': 'Это не он',
    'people.notThisHint': 'Лицо уйдёт от этого человека и больше к нему не вернётся',
    'imports.title': 'Импорт', 'imports.vk': 'ВКонтакте', 'imports.vkSignIn': 'Войти через VK ID',
    'imports.vkConnected': 'VK подключён', 'imports.vkOff': 'Вход через VK не настроен на сервере',
    'imports.vkLink': 'Ссылка на альбом или страницу VK', 'imports.yadisk': 'Яндекс.Диск',
    'imports.yadiskLink': 'Публичная ссылка на папку Яндекс.Диска или disk:/путь на своём диске', 'imports.local': 'Папка на сервере',
    'imports.yandexSignIn': 'Войти через Яндекс (свой Диск)', 'imports.yandexConnected': 'Яндекс.Диск подключён',
    'imports.localPath': 'Путь к папке', 'imports.start': 'Начать', 'imports.drop': 'Перетащите сюда фотографии или выберите файлы',
    'imports.choose': 'Выбрать файлы', 'imports.uploading': 'Загрузка {done} из {total}', 'imports.jobs': 'Задания импорта',
    'imports.none': 'Заданий пока нет', 'imports.counts': 'найдено {discovered}, сохранено {stored} (дубликатов {duplicates}), пропущено {skipped}, ошибок {failed}',
    'imports.uploaded': 'Сохранено: {stored}, дубликатов: {duplicates}, отклонено: {rejected}',
    'job.running': 'идёт', 'job.completed': 'готово', 'job.failed': 'ошибка', 'job.cancelled': 'отменено',
    'export.title': 'Экспорт лиц', 'export.hint': 'Каждое лицо с метаданными: id лица и фото, рамка, уверенность, источник и ссылка на него, модель, дата обработки, человек.',
    'export.csv': 'Скачать CSV', 'export.json': 'Скачать JSON', 'export.filter': 'Текущий фильтр', 'export.everything': 'все фотографии', 'export.bySource': 'источник: {source}', 'export.byImport': 'один импорт', 'export.noFaces': 'только без лиц',
    'monitoring.title': 'Мониторинг', 'monitoring.photos': 'Фото в секунду', 'monitoring.faces': 'Лиц в секунду',
    'monitoring.imported': 'Импорт, фото в секунду', 'monitoring.lag': 'Отставание очереди (события)',
    'monitoring.stages': 'Время этапов, p50 (с)', 'monitoring.cpu': 'CPU (ядер)', 'monitoring.memory': 'Память (МБ)',
    'monitoring.gpu': 'GPU (%)', 'monitoring.noGpu': 'GPU на этой машине нет', 'monitoring.http': 'Запросы к API в секунду',
    'monitoring.totals': 'Фото: {photos}, ждут анализа: {waiting}, лиц: {faces}',
    'monitoring.search': 'Время поиска, p95 (мс)', 'monitoring.stagesP95': 'Время этапов, p95 (с)',
    'monitoring.errors': 'Ошибки в секунду', 'monitoring.updated': 'Обновлено в {time}',
    'series.photos_per_second': 'Фото', 'series.faces_per_second': 'Лица', 'series.imports_per_second': 'Импорт',
    'series.events_published_per_second': 'Опубликовано событий', 'series.projection_events_per_second': 'Применено событий',
    'series.stage_latency_p50': 'Этап, p50', 'series.stage_latency_p95': 'Этап, p95', 'series.batch_size_mean': 'Размер пакета',
    'series.search_latency_p95': 'Поиск, p95', 'series.http_latency_p95': 'API, p95', 'series.http_requests_per_second': 'Запросы',
    'series.relay_lag': 'Ретранслятор', 'series.projection_lag': 'Проекция', 'series.consumer_lag': 'Группа',
    'series.errors_per_second': 'Ошибки', 'series.cpu_cores': 'CPU', 'series.memory_bytes': 'Память',
    'series.gpu_utilization': 'GPU', 'series.gpu_memory_bytes': 'Память GPU',
    'label.outcome.faces': 'с лицами', 'label.outcome.no_faces': 'без лиц', 'label.outcome.rejected': 'отклонены',
    'label.outcome.applied': 'применено', 'label.outcome.duplicate': 'повтор', 'label.outcome.gap': 'пропуск',
    'label.source.vk': 'ВКонтакте', 'label.source.yadisk': 'Яндекс.Диск', 'label.source.local': 'папка', 'label.source.upload': 'загрузка',
    'label.stage.download': 'скачивание', 'label.stage.decode': 'декодирование', 'label.stage.detect': 'поиск лиц',
    'label.stage.align': 'выравнивание', 'label.stage.embed': 'векторы лиц', 'label.stage.index': 'индекс Milvus',
    'label.stage.project': 'проекции',
    'label.projection.photos': 'фото', 'label.projection.faces': 'лица', 'label.projection.imports': 'импорт',
    'label.projection.vectors': 'векторы', 'label.projection.people': 'люди',
    'label.role.api': 'API', 'label.role.relay': 'ретранслятор', 'label.role.projections': 'проекции',
    'label.role.worker': 'обработчик', 'label.role.embedded': 'всё в одном процессе',
    'label.kind.http': 'API', 'label.kind.decode': 'декодирование', 'label.kind.detect': 'поиск лиц', 'label.kind.embed': 'векторы',
    'label.kind.analysis': 'анализ фото', 'label.kind.download': 'скачивание', 'label.kind.index': 'индекс', 'label.kind.project': 'проекции',
    'label.kind.relay': 'ретранслятор', 'label.kind.broker': 'брокер', 'label.kind.import': 'импорт',
    'error.generic': 'Ошибка: {message}',
    // Errors by their stable server code (api/errors.py, commands/images.py, commands/importers/base.py).
    'err.BAD_ACCOUNT': 'Не подходит: имя — от 1 до 64 символов, пароль — не короче 10 символов и не из тех, что угадывают первыми',
    'err.TOO_LARGE': 'Файл слишком большой: можно не больше {limit_megabytes} МБ',
    'err.FILE_TOO_LARGE': 'Файл слишком большой', 'err.REQUEST_TOO_LARGE': 'Слишком много данных за раз: не больше {limit_megabytes} МБ',
    'err.photo_too_large': 'Файл слишком большой: можно не больше {limit_megabytes} МБ',
    'err.TOO_MANY_FILES': 'Слишком много файлов за раз: не больше {limit}',
    'err.EMPTY_FILE': 'Пустой файл (0 байт)',
    'err.NOT_AN_IMAGE': 'Это не изображение: подходят {formats}',
    'err.unsupported_image': 'Это не изображение: подходят {formats}',
    'err.UNSUPPORTED_FORMAT': 'Этот формат не поддерживается: подходят {formats}',
    'err.TOO_MANY_PIXELS': 'Снимок слишком большой: {megapixels} Мп, можно не больше {limit_megapixels} Мп',
    'err.TOO_MANY_PIXELS.limit': 'Снимок слишком большой: можно не больше {limit_megapixels} Мп',
    'err.IMPLAUSIBLE_HEADER': 'Файл повреждён: в заголовке заявлено больше точек, чем в нём есть данных',
    'err.CORRUPT_IMAGE': 'Файл повреждён или обрезан',
    'err.REJECTED_BEFORE': 'Этот файл уже был отклонён раньше',
    'err.NO_FACE': 'На снимке не найдено лицо', 'err.BAD_EXAMPLE': 'Этот снимок не подходит для поиска',
    'err.BAD_THRESHOLD': 'Порог должен быть от {min} до {max} %', 'err.BAD_FACE_INDEX': 'На снимке лиц: {faces}; выберите одно из них',
    'err.EXAMPLE_EXPIRED': 'Образец устарел: загрузите его снова',
    'err.SEARCH_UNAVAILABLE': 'Поиск пока недоступен на этом сервере', 'err.VECTOR_INDEX_UNAVAILABLE': 'Индекс поиска сейчас недоступен: попробуйте позже',
    'err.BAD_CORRECTION': 'Такое исправление сделать нельзя (например, оба человека есть на одном снимке)',
    'err.BAD_CLUSTERING': 'Неверные параметры группировки', 'err.BAD_FILTER': 'Неверный фильтр',
    'err.IMPORT_CLOSED': 'Эта загрузка уже закончена', 'err.NOT_FOUND': 'Не найдено (или принадлежит другому пользователю)',
    'err.not_found': 'Задание импорта не найдено',
    'err.SIGN_IN_REQUIRED': 'Сначала войдите', 'err.UNAUTHENTICATED': 'Сначала войдите', 'err.FORBIDDEN': 'Недостаточно прав',
    'err.CONFLICT': 'Конфликт с текущим состоянием: обновите страницу',
    'err.TOO_MANY_ATTEMPTS': 'Слишком много попыток входа: подождите {seconds} с', 'err.TOO_MANY_REQUESTS': 'Слишком много запросов: подождите немного',
    'err.BAD_REQUEST': 'Сервер не понял запрос', 'err.UNAVAILABLE': 'Сервис сейчас недоступен: попробуйте позже',
    'err.NETWORK': 'Нет связи с сервером', 'err.ERROR': 'Что-то пошло не так на сервере: попробуйте ещё раз',
    'err.bad_link': 'Ссылка не подходит: нужна ссылка на альбом VK или на папку Яндекс.Диска',
    'err.access_denied': 'Нет доступа: ссылка не работает, или владелец закрыл доступ',
    'err.owner_deleted': 'Страница или сообщество удалены или заблокированы',
    'err.token_expired': 'Вход истёк: войдите снова', 'err.credential_unusable': 'Сохранённый вход больше не работает: войдите снова',
    'err.credential_missing': 'Сначала войдите в сервис', 'err.rate_limited': 'Сервис ограничил число запросов: попробуйте позже',
    'err.quota_exhausted': 'Дневной лимит запросов исчерпан: попробуйте завтра',
    'err.source_unavailable': 'Сервис не отвечает: попробуйте позже', 'err.source_error': 'Импорт не удался',
    'err.checksum_mismatch': 'Файл изменился или повредился при скачивании',
    'err.download_failed': 'Не удалось скачать файл', 'err.upload_interrupted': 'Загрузка прервалась, не закончившись',
    'err.bad_source': 'Неизвестный источник', 'err.empty_target': 'Укажите, что импортировать: ссылку или папку',
    'err.not_configured': 'Этот импорт не настроен на сервере', 'err.import_running': 'Задание ещё идёт',
    'err.not_retryable': 'Загрузку нельзя повторить отсюда: выберите файлы снова', 'err.import_refused': 'Импорт не начат',
    'imports.retry': 'Повторить', 'imports.cancel': 'Отменить', 'imports.problems': 'Отклонённые файлы',
    'imports.uploadJob': 'файлов: {n}',
    'imports.uploadCounts': 'сохранено {stored} (дубликатов {duplicates}), отклонено {failed}',
  },
  en: {
    'app.title': 'Face search',
    'nav.gallery': 'Gallery', 'nav.search': 'Search by example', 'nav.people': 'People', 'nav.imports': 'Imports',
    'nav.export': 'Export', 'nav.monitoring': 'Monitoring', 'nav.signout': 'Sign out',
    'login.title': 'Sign in', 'login.setupTitle': 'First account', 'login.setup': 'Create the first account (administrator)',
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
    'search.title': 'Search by example', 'search.drop': 'Drop a {formats} photo with a face here, or choose a file',
    'search.choose': 'Choose a file', 'search.pick': 'There are several faces: pick one',
    'search.threshold': 'Similarity threshold: {n} %', 'search.results': 'Found: {n}', 'search.none': 'No match above the threshold',
    'search.coords': 'coordinates', 'search.same': 'same person', 'search.different': 'different person',
    'search.notEmbedded': 'not processed by this model yet', 'search.person': 'Person: {name}',
    'search.archive': 'faces in the archive: {n}', 'search.allModels': 'Only matches the cross-check of the models confirms ({models})', 'search.crossCheck': 'both models',
    'search.meaning': '70 % finds nearly everything, sometimes with strangers; 85 % is a clean answer (a stranger in about one search in ten); 95 % is near certain.', 'search.unavailable': 'Search by example is not connected on this server yet: the search module (Milvus index and search function) is still being built.',
    'people.title': 'People', 'people.cluster': 'Find people', 'people.clustering': 'Grouping…',
    'people.hint': 'Faces of analysed photos are grouped into people. Your corrections (names, merges, moves, "not this person") are kept when grouping runs again.',
    'people.run': 'Faces: {faces}, people: {people}, in no person: {unassigned}',
    'people.empty': 'No people yet: press "Find people" once photos are analysed',
    'people.unnamed': 'Unnamed', 'people.faces': 'faces: {n}', 'people.edited': 'edited', 'people.name': 'Name',
    'people.save': 'Save', 'people.mergeWith': 'Merge with', 'people.merge': 'Merge', 'people.choose': '— choose —',
    'people.confirmMerge': 'Merge "{other}" into "{name}"? All of its faces move here.',
    'people.split': 'Split the selected off as a new person ({n})', 'people.select': 'select',
    'people.moveTo': 'Move to…', 'people.newPerson': 'a new person', 'people.notThis': 'Not this person',
    'people.notThisHint': 'The face leaves this person and never joins it again',
    'imports.title': 'Imports', 'imports.vk': 'VK', 'imports.vkSignIn': 'Sign in with VK ID',
    'imports.vkConnected': 'VK connected', 'imports.vkOff': 'VK sign-in is not configured on this server',
    'imports.vkLink': 'Link to a VK album or page', 'imports.yadisk': 'Yandex.Disk',
    'imports.yadiskLink': 'Public Yandex.Disk folder link, or disk:/path on your own disk', 'imports.local': 'Folder on the server',
    'imports.yandexSignIn': 'Sign in with Yandex (your own Disk)', 'imports.yandexConnected': 'Yandex.Disk connected',
    'imports.localPath': 'Folder path', 'imports.start': 'Start', 'imports.drop': 'Drop photos here, or choose files',
    'imports.choose': 'Choose files', 'imports.uploading': 'Uploading {done} of {total}', 'imports.jobs': 'Import jobs',
    'imports.none': 'No jobs yet', 'imports.counts': '{discovered} found, {stored} stored ({duplicates} duplicates), {skipped} skipped, {failed} failed',
    'imports.uploaded': 'Stored: {stored}, duplicates: {duplicates}, rejected: {rejected}',
    'job.running': 'running', 'job.completed': 'done', 'job.failed': 'failed', 'job.cancelled': 'cancelled',
    'export.title': 'Export faces', 'export.hint': 'Every face with its metadata: face and photo id, box, score, source and its reference, model, processing date, person.',
    'export.csv': 'Download CSV', 'export.json': 'Download JSON', 'export.filter': 'Current filter', 'export.everything': 'every photo', 'export.bySource': 'source: {source}', 'export.byImport': 'one import', 'export.noFaces': 'only those without faces',
    'monitoring.title': 'Monitoring', 'monitoring.photos': 'Photos per second', 'monitoring.faces': 'Faces per second',
    'monitoring.imported': 'Imported photos per second', 'monitoring.lag': 'Queue lag (events)',
    'monitoring.stages': 'Stage time, p50 (s)', 'monitoring.cpu': 'CPU (cores)', 'monitoring.memory': 'Memory (MB)',
    'monitoring.gpu': 'GPU (%)', 'monitoring.noGpu': 'No GPU on this machine', 'monitoring.http': 'API requests per second',
    'monitoring.totals': 'Photos: {photos}, waiting for analysis: {waiting}, faces: {faces}',
    'monitoring.search': 'Search time, p95 (ms)', 'monitoring.stagesP95': 'Stage time, p95 (s)',
    'monitoring.errors': 'Errors per second', 'monitoring.updated': 'Updated at {time}',
    'series.photos_per_second': 'Photos', 'series.faces_per_second': 'Faces', 'series.imports_per_second': 'Imported',
    'series.events_published_per_second': 'Events published', 'series.projection_events_per_second': 'Events applied',
    'series.stage_latency_p50': 'Stage, p50', 'series.stage_latency_p95': 'Stage, p95', 'series.batch_size_mean': 'Batch size',
    'series.search_latency_p95': 'Search, p95', 'series.http_latency_p95': 'API, p95', 'series.http_requests_per_second': 'Requests',
    'series.relay_lag': 'Relay', 'series.projection_lag': 'Projection', 'series.consumer_lag': 'Group',
    'series.errors_per_second': 'Errors', 'series.cpu_cores': 'CPU', 'series.memory_bytes': 'Memory',
    'series.gpu_utilization': 'GPU', 'series.gpu_memory_bytes': 'GPU memory',
    'label.outcome.faces': 'with faces', 'label.outcome.no_faces': 'no faces', 'label.outcome.rejected': 'rejected',
    'label.outcome.applied': 'applied', 'label.outcome.duplicate': 'duplicate', 'label.outcome.gap': 'gap',
    'label.source.vk': 'VK', 'label.source.yadisk': 'Yandex.Disk', 'label.source.local': 'folder', 'label.source.upload': 'upload',
    'label.stage.download': 'download', 'label.stage.decode': 'decoding', 'label.stage.detect': 'face detection',
    'label.stage.align': 'alignment', 'label.stage.embed': 'face vectors', 'label.stage.index': 'Milvus index',
    'label.stage.project': 'projections',
    'label.projection.photos': 'photos', 'label.projection.faces': 'faces', 'label.projection.imports': 'imports',
    'label.projection.vectors': 'vectors', 'label.projection.people': 'people',
    'label.role.api': 'API', 'label.role.relay': 'relay', 'label.role.projections': 'projections',
    'label.role.worker': 'worker', 'label.role.embedded': 'all in one process',
    'label.kind.http': 'API', 'label.kind.decode': 'decoding', 'label.kind.detect': 'face detection', 'label.kind.embed': 'vectors',
    'label.kind.analysis': 'photo analysis', 'label.kind.download': 'download', 'label.kind.index': 'index', 'label.kind.project': 'projections',
    'label.kind.relay': 'relay', 'label.kind.broker': 'broker', 'label.kind.import': 'import',
    'error.generic': 'Error: {message}',
    'err.BAD_ACCOUNT': 'Not accepted: a user name of 1 to 64 characters, a password of at least 10 that guessing does not try first',
    'err.TOO_LARGE': 'The file is too large: at most {limit_megabytes} MB',
    'err.FILE_TOO_LARGE': 'The file is too large', 'err.REQUEST_TOO_LARGE': 'Too much at once: at most {limit_megabytes} MB',
    'err.photo_too_large': 'The file is too large: at most {limit_megabytes} MB',
    'err.TOO_MANY_FILES': 'Too many files at once: at most {limit}',
    'err.EMPTY_FILE': 'Empty file (0 bytes)',
    'err.NOT_AN_IMAGE': 'Not an image: use {formats}',
    'err.unsupported_image': 'Not an image: use {formats}',
    'err.UNSUPPORTED_FORMAT': 'This format is not supported: use {formats}',
    'err.TOO_MANY_PIXELS': 'The picture is too large: {megapixels} MP, at most {limit_megapixels} MP',
    'err.TOO_MANY_PIXELS.limit': 'The picture is too large: at most {limit_megapixels} MP',
    'err.IMPLAUSIBLE_HEADER': 'The file is damaged: its header claims more pixels than its data can hold',
    'err.CORRUPT_IMAGE': 'The file is damaged or cut short',
    'err.REJECTED_BEFORE': 'This file was rejected before',
    'err.NO_FACE': 'No face found in the photo', 'err.BAD_EXAMPLE': 'This photo cannot be searched with',
    'err.BAD_THRESHOLD': 'The threshold must be between {min} and {max} %', 'err.BAD_FACE_INDEX': 'The photo has {faces} faces: pick one of them',
    'err.EXAMPLE_EXPIRED': 'The example has expired: upload it again',
    'err.SEARCH_UNAVAILABLE': 'Search is not available on this server yet', 'err.VECTOR_INDEX_UNAVAILABLE': 'The search index is unavailable: try again later',
    'err.BAD_CORRECTION': 'This correction is not possible (both people in one photo, for instance)',
    'err.BAD_CLUSTERING': 'Wrong grouping options', 'err.BAD_FILTER': 'Wrong filter',
    'err.IMPORT_CLOSED': 'This upload has ended', 'err.NOT_FOUND': 'Not found (or someone else\'s)',
    'err.not_found': 'No such import job',
    'err.SIGN_IN_REQUIRED': 'Sign in first', 'err.UNAUTHENTICATED': 'Sign in first', 'err.FORBIDDEN': 'Not allowed',
    'err.CONFLICT': 'This conflicts with the current state: reload the page',
    'err.TOO_MANY_ATTEMPTS': 'Too many sign-in attempts: wait {seconds} s', 'err.TOO_MANY_REQUESTS': 'Too many requests: wait a little',
    'err.BAD_REQUEST': 'The server did not understand the request', 'err.UNAVAILABLE': 'The service is unavailable: try again later',
    'err.NETWORK': 'The server cannot be reached', 'err.ERROR': 'Something went wrong on the server: try again',
    'err.bad_link': 'This link will not do: paste a VK album or Yandex.Disk folder link',
    'err.access_denied': 'No access: the link is broken, or its owner stopped sharing it',
    'err.owner_deleted': 'The page or community was deleted or banned',
    'err.token_expired': 'The sign-in has expired: sign in again', 'err.credential_unusable': 'The saved sign-in no longer works: sign in again',
    'err.credential_missing': 'Sign in to the service first', 'err.rate_limited': 'The service is limiting requests: try again later',
    'err.quota_exhausted': 'The daily request quota is spent: try again tomorrow',
    'err.source_unavailable': 'The service does not answer: try again later', 'err.source_error': 'The import failed',
    'err.checksum_mismatch': 'The file changed or was damaged in transit',
    'err.download_failed': 'The file could not be downloaded', 'err.upload_interrupted': 'The upload was interrupted before it ended',
    'err.bad_source': 'Unknown source', 'err.empty_target': 'Say what to import: a link or a folder',
    'err.not_configured': 'This import is not configured on the server', 'err.import_running': 'The job is still running',
    'err.not_retryable': 'An upload cannot be repeated from here: choose the files again', 'err.import_refused': 'The import did not start',
    'imports.retry': 'Retry', 'imports.cancel': 'Cancel', 'imports.problems': 'Rejected files',
    'imports.uploadJob': '{n} files',
    'imports.uploadCounts': '{stored} stored ({duplicates} duplicates), {failed} rejected',
  },
};

for (const code of Object.keys(peopleMessages)) Object.assign(messages[code], peopleMessages[code]);

const saved = typeof localStorage !== 'undefined' ? localStorage.getItem('lang') : null;
export const lang = writable(saved === 'en' || saved === 'ru' ? saved : 'ru');
lang.subscribe((value) => {
  if (typeof localStorage !== 'undefined') localStorage.setItem('lang', value);
  if (typeof document !== 'undefined') document.documentElement.lang = value;
});

// The server's format labels as a list in the language's own way ("A, B или C").
const formatList = ($lang, $catalog) =>
  new Intl.ListFormat($lang, { type: 'disjunction' }).format($catalog.formats.labels);

export const t = derived([lang, catalog], ([$lang, $catalog]) => (key, vars = {}) => {
  const text = messages[$lang][key] ?? messages.en[key] ?? key;
  const all = { formats: formatList($lang, $catalog), ...vars };
  return text.replace(/\{(\w+)\}/g, (_, name) => String(all[name] ?? ''));
});

/** A source's label, by its name or its GraphQL value: the client's own words where it has
 *  them, the server's label for a source it does not know. */
export const sourceLabel = derived([t, catalog], ([$t, $catalog]) => (nameOrValue) => {
  const source = $catalog.sources.find((s) => s.name === nameOrValue || s.value === nameOrValue);
  const key = 'source.' + (source?.name ?? nameOrValue);
  const text = $t(key);
  return text === key ? (source?.label ?? nameOrValue) : text;
});

export const languages = Object.keys(messages);

// Numbers in the language's own way (1,5 in Russian, 1.5 in English).
const number = (value, language) =>
  typeof value === 'number' ? new Intl.NumberFormat(language, { maximumFractionDigits: 1 }).format(value) : value;

/** An error as the user reads it: the server's stable `code` and `params` in the current
 *  language, never the server's own (English, technical) text. */
export const describe = derived([lang, catalog], ([$lang, $catalog]) => (error) => {
  const code = error?.code || 'ERROR';
  const params = Object.fromEntries(Object.entries(error?.params ?? {}).map(([k, v]) => [k, number(v, $lang)]));
  params.formats ??= formatList($lang, $catalog);
  let key = `err.${code}`;
  if (code === 'TOO_MANY_PIXELS' && params.megapixels === undefined) key = 'err.TOO_MANY_PIXELS.limit';
  const text = messages[$lang][key] ?? messages[$lang]['err.ERROR'];
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ''));
});
