export default 'apps';
